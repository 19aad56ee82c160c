import { createTimeBuckets } from "../stats/time-buckets.js";
import { stripUndefined } from "../strip-undefined.js";

/**
 * RetryBudget caps retries to a fraction of recent calls plus a small floor,
 * the Finagle way: retries can never multiply the load on a struggling
 * service by more than `1 + ratio`, however many layers retry.
 */
export interface RetryBudget {
  /** recordCall deposits one original call (never a retry) at `now`. */
  recordCall(now: number): void;
  /**
   * tryWithdraw takes one retry from the budget at `now`. It returns false
   * and counts an exhaustion when the budget is empty.
   */
  tryWithdraw(now: number): boolean;
  /** available is how many retries tryWithdraw would grant at `now`. */
  available(now: number): number;
  /** exhausted counts tryWithdraw calls refused since creation. */
  readonly exhausted: number;
  /** withdrawn counts retries granted since creation. */
  readonly withdrawn: number;
}

/**
 * RetryBudgetOptions configures createRetryBudget. Defaults
 * (RETRY_BUDGET_DEFAULTS): ratio 0.2, minRetriesPerSecond 10, ttlMs 10_000,
 * buckets 10.
 */
export interface RetryBudgetOptions {
  /** ratio of recorded calls that may be retried, in [0, 1000]. */
  readonly ratio?: number;
  /** minRetriesPerSecond is a floor so low-traffic clients can still retry; >= 0. */
  readonly minRetriesPerSecond?: number;
  /** ttlMs is how long a deposit or a withdrawal counts; > 0. */
  readonly ttlMs?: number;
  /** buckets is the sliding window's resolution, 1..1000. */
  readonly buckets?: number;
}

/** RETRY_BUDGET_DEFAULTS are the defaults documented on RetryBudgetOptions (Finagle's). */
export const RETRY_BUDGET_DEFAULTS: Required<RetryBudgetOptions> = Object.freeze({
  // 20% extra load at most: enough to ride out a bad instance, not enough to
  // turn an overload into a retry storm.
  ratio: 0.2,
  minRetriesPerSecond: 10,
  ttlMs: 10_000,
  buckets: 10,
});

const CALLS = 0;
const RETRIES = 1;
// Absorbs float error so that, say, 0.1 * 30 calls grants 3 retries, not 2.
const EPSILON = 1e-9;

/**
 * createRetryBudget builds a budget over a sliding window of `ttlMs`:
 * `available = floor(ratio * calls + minRetriesPerSecond * ttlMs / 1000 - retries)`,
 * counting calls and retries in the window. The window moves a bucket at a
 * time (it holds the current bucket and the `buckets - 1` before it), so it
 * spans between `ttlMs - ttlMs / buckets` and `ttlMs`. Time is passed in; no timers.
 */
export function createRetryBudget(options: RetryBudgetOptions = {}): RetryBudget {
  const o = { ...RETRY_BUDGET_DEFAULTS, ...stripUndefined(options) };
  if (!(o.ratio >= 0 && o.ratio <= 1000)) {
    throw new RangeError(`ratio ${o.ratio} must be in [0, 1000]`);
  }
  if (!(o.minRetriesPerSecond >= 0) || !Number.isFinite(o.minRetriesPerSecond)) {
    throw new RangeError(
      `minRetriesPerSecond ${o.minRetriesPerSecond} must be a finite number >= 0`,
    );
  }
  // createTimeBuckets validates ttlMs (as windowMs) and buckets; rename for the message.
  if (!(o.ttlMs > 0) || !Number.isFinite(o.ttlMs)) {
    throw new RangeError(`ttlMs ${o.ttlMs} must be a finite number > 0`);
  }
  const window = createTimeBuckets({ windowMs: o.ttlMs, buckets: o.buckets, fields: 2 });
  const reserve = (o.minRetriesPerSecond * o.ttlMs) / 1000;
  let exhausted = 0;
  let withdrawn = 0;

  const available = (now: number): number => {
    const balance = o.ratio * window.sum(CALLS, now) + reserve - window.sum(RETRIES, now);
    return Math.max(0, Math.floor(balance + EPSILON));
  };

  return {
    recordCall(now) {
      window.add(CALLS, now);
    },
    tryWithdraw(now) {
      if (available(now) < 1) {
        exhausted++;
        return false;
      }
      window.add(RETRIES, now);
      withdrawn++;
      return true;
    },
    available,
    get exhausted() {
      return exhausted;
    },
    get withdrawn() {
      return withdrawn;
    },
  };
}
