import type { LimitWindow } from "./limit-algorithm.js";

/** LimitSample is one finished call, as an adaptive limit measures it. */
export interface LimitSample {
  /** nowMs is the clock time at which the call finished. */
  readonly nowMs: number;
  /** rttMs is how long the call held its slot. */
  readonly rttMs: number;
  /** inFlight is the number of calls in flight when it started, itself included. */
  readonly inFlight: number;
  /** didDrop says the call timed out. */
  readonly didDrop: boolean;
}

/** SampleWindowState accumulates the samples of the window that is open. */
export interface SampleWindowState {
  readonly startMs: number;
  readonly samples: number;
  readonly rttSumMs: number;
  readonly minRttMs: number;
  readonly maxInFlight: number;
  readonly didDrop: boolean;
}

/** SampleWindowOptions say when a window closes. */
export interface SampleWindowOptions {
  /** windowMs is the shortest window, from its first sample. */
  readonly windowMs: number;
  /** minSamples is the fewest samples a window closes with (it stays open until then). */
  readonly minSamples: number;
}

/** SampleWindowStep is the result of adding one sample. */
export interface SampleWindowStep {
  /** window is the open window after the sample (undefined right after one closed). */
  readonly window: SampleWindowState | undefined;
  /** closed is the summary of the window this sample closed, if it closed one. */
  readonly closed: LimitWindow | undefined;
}

/**
 * addSample adds one finished call to the open window (pure). The window
 * closes with the first sample at or after `windowMs` from its start once it
 * holds `minSamples`, as Netflix's `WindowedLimit` does: per-window averages
 * keep one slow call from moving the limit.
 */
export function addSample(
  window: SampleWindowState | undefined,
  sample: LimitSample,
  options: SampleWindowOptions,
): SampleWindowStep {
  const w: SampleWindowState =
    window === undefined
      ? {
          startMs: sample.nowMs - sample.rttMs,
          samples: 1,
          rttSumMs: sample.rttMs,
          minRttMs: sample.rttMs,
          maxInFlight: sample.inFlight,
          didDrop: sample.didDrop,
        }
      : {
          startMs: window.startMs,
          samples: window.samples + 1,
          rttSumMs: window.rttSumMs + sample.rttMs,
          minRttMs: Math.min(window.minRttMs, sample.rttMs),
          maxInFlight: Math.max(window.maxInFlight, sample.inFlight),
          didDrop: window.didDrop || sample.didDrop,
        };
  if (sample.nowMs - w.startMs < options.windowMs || w.samples < options.minSamples) {
    return { window: w, closed: undefined };
  }
  return {
    window: undefined,
    closed: {
      endMs: sample.nowMs,
      samples: w.samples,
      avgRttMs: w.rttSumMs / w.samples,
      minRttMs: w.minRttMs,
      maxInFlight: w.maxInFlight,
      didDrop: w.didDrop,
    },
  };
}
