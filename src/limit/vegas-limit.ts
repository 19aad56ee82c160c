import { stripUndefined } from "../strip-undefined.js";
import {
  type LimitAlgorithm,
  type LimitWindow,
  validateLimitBounds,
  validateRange,
} from "./limit-algorithm.js";

/**
 * VegasOptions tune the Vegas limit (Netflix concurrency-limits'
 * `VegasLimit`, after TCP Vegas): it estimates the queue as
 * `limit * (1 - rttNoLoad / rtt)` and grows the limit while that queue is
 * short, shrinks it while it is long.
 */
export interface VegasOptions {
  /** initialLimit is the limit before any sample; default 20. */
  readonly initialLimit?: number;
  /** minLimit is the floor of the limit; default 1. */
  readonly minLimit?: number;
  /** maxLimit is the ceiling of the limit; default 1000. */
  readonly maxLimit?: number;
  /** smoothing is the weight of a new estimate, in (0, 1]; default 1 (Netflix's). */
  readonly smoothing?: number;
  /**
   * probeMultiplier says how often the no-load RTT is forgotten and measured
   * again: after `probeMultiplier * limit` windows; default 30 (Netflix's, which
   * counts samples and adds jitter; windows make it steadier).
   */
  readonly probeMultiplier?: number;
}

/** VegasState is the immutable state of a Vegas limit. */
export interface VegasState {
  /** limit is the estimated limit, unrounded. */
  readonly limit: number;
  /** rttNoLoadMs is the lowest RTT seen since the last probe; 0 before the first window. */
  readonly rttNoLoadMs: number;
  /** windowsSinceProbe counts windows since the no-load RTT was last reset. */
  readonly windowsSinceProbe: number;
}

/** VEGAS_DEFAULTS are the defaults of VegasOptions. */
export const VEGAS_DEFAULTS = Object.freeze({
  initialLimit: 20,
  minLimit: 1,
  maxLimit: 1000,
  smoothing: 1,
  probeMultiplier: 30,
});

/**
 * createVegasLimit builds the Vegas algorithm as a pure decision. With
 * `l = log10(limit)` and `queue = ceil(limit * (1 - rttNoLoad / rtt))`: a
 * queue <= l adds 6·l (a fast start), < 3·l adds l, > 6·l removes l, and a
 * window with a timeout removes l; the limit holds while under half of it is
 * in flight.
 */
export function createVegasLimit(options: VegasOptions = {}): LimitAlgorithm<VegasState> {
  const o = { ...VEGAS_DEFAULTS, ...stripUndefined(options) };
  validateLimitBounds("vegas", o);
  validateRange("vegas: smoothing", o.smoothing, 0, 1);
  if (!(typeof o.probeMultiplier === "number" && o.probeMultiplier > 0)) {
    throw new RangeError(`vegas: probeMultiplier ${String(o.probeMultiplier)} must be > 0`);
  }
  const clamp = (v: number) => Math.max(o.minLimit, Math.min(o.maxLimit, v));
  return {
    name: "vegas",
    initial: () => ({ limit: o.initialLimit, rttNoLoadMs: 0, windowsSinceProbe: 0 }),
    limitOf: (s) => clamp(Math.floor(s.limit)),
    update(state, w: LimitWindow): VegasState {
      const rtt = w.avgRttMs;
      if (!(rtt > 0) || !Number.isFinite(rtt)) return state;
      const windowsSinceProbe = state.windowsSinceProbe + 1;
      if (state.rttNoLoadMs === 0 || rtt < state.rttNoLoadMs) {
        return { ...state, rttNoLoadMs: rtt, windowsSinceProbe };
      }
      if (windowsSinceProbe > o.probeMultiplier * state.limit) {
        // Forget the old floor: the service may have become slower for good.
        return { ...state, rttNoLoadMs: rtt, windowsSinceProbe: 0 };
      }
      const next = { ...state, windowsSinceProbe };
      const limit = state.limit;
      const l = Math.max(1, Math.log10(limit));
      const queue = Math.ceil(limit * (1 - state.rttNoLoadMs / rtt));
      let estimate: number;
      if (w.didDrop) {
        estimate = limit - l;
      } else if (w.maxInFlight * 2 < limit) {
        return next;
      } else if (queue <= l) {
        estimate = limit + 6 * l;
      } else if (queue < 3 * l) {
        estimate = limit + l;
      } else if (queue > 6 * l) {
        estimate = limit - l;
      } else {
        return next;
      }
      const smoothed = limit * (1 - o.smoothing) + clamp(estimate) * o.smoothing;
      return { ...next, limit: clamp(smoothed) };
    },
  };
}
