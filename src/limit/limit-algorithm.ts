/**
 * LimitWindow summarises the calls that completed in one sample window: what
 * an adaptive limit algorithm updates from. Netflix concurrency-limits'
 * `WindowedLimit` feeds its algorithms the same aggregate (average RTT, peak
 * in-flight, whether a call was dropped).
 */
export interface LimitWindow {
  /** endMs is the clock time at which the window closed. */
  readonly endMs: number;
  /** samples is the number of calls measured in the window (>= 1). */
  readonly samples: number;
  /** avgRttMs is the mean round-trip (handler) time of those calls. */
  readonly avgRttMs: number;
  /** minRttMs is the shortest of those round-trip times. */
  readonly minRttMs: number;
  /** maxInFlight is the most calls in flight when any of them started. */
  readonly maxInFlight: number;
  /** didDrop says a call in the window timed out (a sign of overload). */
  readonly didDrop: boolean;
}

/**
 * LimitAlgorithm is a pure, immutable adaptive concurrency limit: `initial`
 * gives the first state, `update` the state after one sample window, and
 * `limitOf` the whole number of calls the state allows in flight.
 */
export interface LimitAlgorithm<S> {
  /** name is the algorithm's name as in the options ("gradient2", "vegas"). */
  readonly name: string;
  /** initial is the state before any sample. */
  initial(): S;
  /** update returns the state after one window; it never mutates `state`. */
  update(state: S, window: LimitWindow): S;
  /** limitOf is the number of calls the state admits in flight (>= 1). */
  limitOf(state: S): number;
}

/** validateLimitBounds checks minLimit <= initialLimit <= maxLimit, all integers >= 1. */
export function validateLimitBounds(
  name: string,
  bounds: { readonly minLimit: number; readonly maxLimit: number; readonly initialLimit: number },
): void {
  for (const key of ["minLimit", "maxLimit", "initialLimit"] as const) {
    const v = bounds[key];
    if (!(typeof v === "number" && Number.isSafeInteger(v) && v >= 1)) {
      throw new RangeError(`${name}: ${key} ${String(v)} must be an integer >= 1`);
    }
  }
  if (bounds.minLimit > bounds.maxLimit) {
    throw new RangeError(
      `${name}: minLimit ${bounds.minLimit} must be <= maxLimit ${bounds.maxLimit}`,
    );
  }
  if (bounds.initialLimit < bounds.minLimit || bounds.initialLimit > bounds.maxLimit) {
    throw new RangeError(
      `${name}: initialLimit ${bounds.initialLimit} must be in minLimit..maxLimit (${bounds.minLimit}..${bounds.maxLimit})`,
    );
  }
}

/** validateRange checks that `value` is a number in (lo, hi]. */
export function validateRange(name: string, value: unknown, lo: number, hi: number): void {
  if (!(typeof value === "number" && value > lo && value <= hi)) {
    throw new RangeError(`${name} ${String(value)} must be in (${lo}, ${hi}]`);
  }
}
