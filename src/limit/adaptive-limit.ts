import { createGradient2Limit, type Gradient2Options } from "./gradient2-limit.js";
import type { LimitAlgorithm, LimitWindow } from "./limit-algorithm.js";
import {
  addSample,
  type LimitSample,
  type SampleWindowOptions,
  type SampleWindowState,
} from "./sample-window.js";
import { createVegasLimit, type VegasOptions } from "./vegas-limit.js";

/** AdaptiveAlgorithm names an adaptive limit algorithm. */
export type AdaptiveAlgorithm = "gradient2" | "vegas";

/**
 * AdaptiveConcurrencyOptions configure an adaptive concurrency limit: the
 * algorithm, its tuning (Gradient2Options or VegasOptions, by `algorithm`),
 * whether each method has its own limit or the server one, and the sample
 * window the algorithm updates from.
 */
export interface AdaptiveConcurrencyOptions extends Gradient2Options, VegasOptions {
  /** algorithm is `gradient2` (default; Netflix's recommended one) or `vegas`. */
  readonly algorithm?: AdaptiveAlgorithm;
  /**
   * per is `method` (default: each method learns its own limit, as
   * `maxInFlight` limits each method) or `server` (one limit for every
   * method: one capacity shared by all).
   */
  readonly per?: "method" | "server";
  /** windowMs is the shortest sample window; default 100. */
  readonly windowMs?: number;
  /** minSamples is the fewest calls a window needs before it updates the limit; default 10. */
  readonly minSamples?: number;
}

/** ADAPTIVE_CONCURRENCY_DEFAULTS are the mechanism defaults of AdaptiveConcurrencyOptions. */
export const ADAPTIVE_CONCURRENCY_DEFAULTS = Object.freeze({
  algorithm: "gradient2" as AdaptiveAlgorithm,
  per: "method" as "method" | "server",
  // Ten windows a second: the limit can follow a burst within a second or
  // two, and a window still averages over several calls (Netflix uses 1 s).
  windowMs: 100,
  minSamples: 10,
});

/** AdaptiveLimitState is the immutable state of one adaptive limit: the algorithm's and the open window's. */
export interface AdaptiveLimitState {
  readonly algorithm: unknown;
  readonly window: SampleWindowState | undefined;
  /** lastWindow is the last window that closed (what the limit was last computed from). */
  readonly lastWindow: LimitWindow | undefined;
}

/** AdaptiveLimit is an algorithm behind a sample window, as a pure decision. */
export interface AdaptiveLimit {
  readonly algorithm: AdaptiveAlgorithm;
  readonly per: "method" | "server";
  /** initial is the state before any call. */
  initial(): AdaptiveLimitState;
  /** onSample returns the state after one finished call. */
  onSample(state: AdaptiveLimitState, sample: LimitSample): AdaptiveLimitState;
  /** limitOf is the whole number of calls the state admits in flight. */
  limitOf(state: AdaptiveLimitState): number;
}

/**
 * createAdaptiveLimit validates the options and builds the pure adaptive
 * limit; `"gradient2"` and `"vegas"` are shorthands for `{ algorithm }`.
 */
export function createAdaptiveLimit(
  options: AdaptiveConcurrencyOptions | AdaptiveAlgorithm,
): AdaptiveLimit {
  const o = typeof options === "string" ? { algorithm: options } : options;
  if (typeof o !== "object" || o === null) {
    throw new TypeError(
      `adaptive ${String(options)} must be "gradient2", "vegas" or an options object`,
    );
  }
  const algorithm = o.algorithm ?? ADAPTIVE_CONCURRENCY_DEFAULTS.algorithm;
  const per = o.per ?? ADAPTIVE_CONCURRENCY_DEFAULTS.per;
  if (per !== "method" && per !== "server") {
    throw new RangeError(`adaptive.per ${JSON.stringify(per)} must be "method" or "server"`);
  }
  const window: SampleWindowOptions = {
    windowMs: o.windowMs ?? ADAPTIVE_CONCURRENCY_DEFAULTS.windowMs,
    minSamples: o.minSamples ?? ADAPTIVE_CONCURRENCY_DEFAULTS.minSamples,
  };
  if (!(typeof window.windowMs === "number" && window.windowMs >= 0 && window.windowMs <= 60_000)) {
    throw new RangeError(`adaptive.windowMs ${String(window.windowMs)} must be in 0..60000`);
  }
  if (!(Number.isSafeInteger(window.minSamples) && window.minSamples >= 1)) {
    throw new RangeError(
      `adaptive.minSamples ${String(window.minSamples)} must be an integer >= 1`,
    );
  }
  let algo: LimitAlgorithm<unknown>;
  if (algorithm === "gradient2") {
    algo = createGradient2Limit(o) as LimitAlgorithm<unknown>;
  } else if (algorithm === "vegas") {
    algo = createVegasLimit(o) as LimitAlgorithm<unknown>;
  } else {
    throw new RangeError(
      `adaptive.algorithm ${JSON.stringify(algorithm)} must be "gradient2" or "vegas"`,
    );
  }
  return {
    algorithm,
    per,
    initial: () => ({ algorithm: algo.initial(), window: undefined, lastWindow: undefined }),
    onSample(state, sample) {
      const step = addSample(state.window, sample, window);
      if (step.closed === undefined) return { ...state, window: step.window };
      return {
        algorithm: algo.update(state.algorithm, step.closed),
        window: undefined,
        lastWindow: step.closed,
      };
    },
    limitOf: (state) => algo.limitOf(state.algorithm),
  };
}
