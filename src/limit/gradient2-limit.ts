import { stripUndefined } from "../strip-undefined.js";
import {
  type LimitAlgorithm,
  type LimitWindow,
  validateLimitBounds,
  validateRange,
} from "./limit-algorithm.js";

/**
 * Gradient2Options tune the Gradient2 limit (Netflix concurrency-limits'
 * `Gradient2Limit`): the limit follows the ratio of a long-window RTT (the
 * latency the service had before the current load) to the short-window RTT
 * (the latency now), plus a queue allowance that lets it probe upwards.
 */
export interface Gradient2Options {
  /** initialLimit is the limit before any sample; default 20 (Netflix's). */
  readonly initialLimit?: number;
  /** minLimit is the floor of the limit; default 1. */
  readonly minLimit?: number;
  /** maxLimit is the ceiling of the limit; default 1000. */
  readonly maxLimit?: number;
  /**
   * smoothing is the weight of a new estimate against the current limit, in
   * (0, 1]; default 0.2 (Netflix's): the limit moves a fifth of the way per window.
   */
  readonly smoothing?: number;
  /**
   * decreaseSmoothing is the weight of a new estimate that is below the
   * current limit, in (0, 1]; default 1: a fall applies in full at once, as
   * in Envoy's gradient controller (which never smooths), while growth keeps
   * `smoothing`. Netflix smooths both ways (0.2); at the onset of an overload
   * that keeps the limit, and the queue behind it, several times too high for
   * seconds (~10 windows to fall from 20 to 8), which is what the p99 of
   * admitted calls measures. The gradient's floor (0.5) still bounds one window's cut.
   */
  readonly decreaseSmoothing?: number;
  /**
   * rttTolerance is how much the short RTT may exceed the long one before the
   * limit shrinks, >= 1; default 1.5 (Netflix's).
   */
  readonly rttTolerance?: number;
  /**
   * longWindow is the number of windows the long RTT averages over
   * (exponentially), >= 1; default 6000: with 100 ms windows ten minutes, the
   * horizon of Netflix's 600 one-second windows. A shorter one lets the long
   * RTT creep up under sustained overload, and the limit (and the latency of
   * admitted calls) with it.
   */
  readonly longWindow?: number;
  /**
   * queueSize is the allowance added to the limit on every window, so it
   * keeps probing for more room: a number, or a function of the current
   * limit; default `max(1, sqrt(limit) / 2)`: grows slowly with the limit,
   * as Envoy's and Netflix's square-root allowances do, but half as large so
   * small limits queue less (Netflix's constant default is 4).
   */
  readonly queueSize?: number | ((limit: number) => number);
}

/** Gradient2State is the immutable state of a Gradient2 limit. */
export interface Gradient2State {
  /** limit is the estimated limit, unrounded. */
  readonly limit: number;
  /** longRttMs is the long-window RTT; 0 before the first window. */
  readonly longRttMs: number;
  /** windows is the number of windows seen (the long RTT warms up as a plain mean over the first 10). */
  readonly windows: number;
  /** lastRttMs is the short RTT of the last window; 0 before the first. */
  readonly lastRttMs: number;
}

/** GRADIENT2_DEFAULTS are the defaults of Gradient2Options. */
export const GRADIENT2_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 1,
  maxLimit: 1000,
  smoothing: 0.2,
  decreaseSmoothing: 1,
  rttTolerance: 1.5,
  longWindow: 6000,
  queueSize: (limit: number): number => Math.max(1, Math.sqrt(limit) / 2),
});

// Netflix's ExpAvgMeasurement: a plain mean over the first windows, so one
// odd first sample does not anchor the long RTT for minutes.
const LONG_RTT_WARMUP_WINDOWS = 10;
// The long RTT far above the short one means load came back to normal after a
// long overload (the long average had crept up); decay it faster than the
// average would, as Netflix does, so the limit re-opens.
const LONG_RTT_RESET_RATIO = 2;
const LONG_RTT_DECAY = 0.95;
// The gradient never cuts the limit by more than half in one window, so one
// outlier window cannot collapse it.
const MIN_GRADIENT = 0.5;

/**
 * createGradient2Limit builds the Gradient2 algorithm as a pure decision:
 * per window, `gradient = clamp(tolerance * longRtt / shortRtt, 0.5, 1)`,
 * `estimate = limit * gradient + queueSize` and
 * `limit' = limit * (1 - w) + estimate * w`, where `w` is `smoothing` when the
 * estimate is above the limit and `decreaseSmoothing` when below, clamped to
 * [minLimit, maxLimit]. The limit does not grow while fewer than
 * half of it are in flight (the service is not the bottleneck then).
 */
export function createGradient2Limit(
  options: Gradient2Options = {},
): LimitAlgorithm<Gradient2State> {
  const o = { ...GRADIENT2_DEFAULTS, ...stripUndefined(options) };
  validateLimitBounds("gradient2", o);
  validateRange("gradient2: smoothing", o.smoothing, 0, 1);
  validateRange("gradient2: decreaseSmoothing", o.decreaseSmoothing, 0, 1);
  if (
    !(typeof o.rttTolerance === "number" && o.rttTolerance >= 1 && Number.isFinite(o.rttTolerance))
  ) {
    throw new RangeError(`gradient2: rttTolerance ${String(o.rttTolerance)} must be a number >= 1`);
  }
  if (!(Number.isSafeInteger(o.longWindow) && o.longWindow >= 1)) {
    throw new RangeError(`gradient2: longWindow ${String(o.longWindow)} must be an integer >= 1`);
  }
  const queueSize = compileQueueSize(o.queueSize);
  const alpha = 2 / (o.longWindow + 1);

  return {
    name: "gradient2",
    initial: () => ({ limit: o.initialLimit, longRttMs: 0, windows: 0, lastRttMs: 0 }),
    limitOf: (s) => Math.max(o.minLimit, Math.min(o.maxLimit, Math.floor(s.limit))),
    update(state, w: LimitWindow): Gradient2State {
      const shortRtt = w.avgRttMs;
      if (!(shortRtt > 0) || !Number.isFinite(shortRtt)) {
        // A window of instant calls says nothing about queueing.
        return state;
      }
      const windows = state.windows + 1;
      let longRtt =
        state.windows < LONG_RTT_WARMUP_WINDOWS
          ? (state.longRttMs * state.windows + shortRtt) / windows
          : state.longRttMs * (1 - alpha) + shortRtt * alpha;
      if (longRtt / shortRtt > LONG_RTT_RESET_RATIO) {
        longRtt *= LONG_RTT_DECAY;
      }
      const next = { limit: state.limit, longRttMs: longRtt, windows, lastRttMs: shortRtt };
      // App-limited: the callers, not the service, bound concurrency.
      if (w.maxInFlight < state.limit / 2) {
        return next;
      }
      const gradient = Math.max(MIN_GRADIENT, Math.min(1, (o.rttTolerance * longRtt) / shortRtt));
      const estimate = state.limit * gradient + queueSize(state.limit);
      const weight = estimate < state.limit ? o.decreaseSmoothing : o.smoothing;
      const smoothed = state.limit * (1 - weight) + estimate * weight;
      return { ...next, limit: Math.max(o.minLimit, Math.min(o.maxLimit, smoothed)) };
    },
  };
}

function compileQueueSize(q: number | ((limit: number) => number)): (limit: number) => number {
  if (typeof q === "function") {
    return (limit) => {
      const v = q(limit);
      return Number.isFinite(v) && v >= 0 ? v : 0;
    };
  }
  if (!(typeof q === "number" && Number.isFinite(q) && q >= 0)) {
    throw new RangeError(`gradient2: queueSize ${String(q)} must be a number >= 0 or a function`);
  }
  return () => q;
}
