import {
  createTimeBuckets,
  type TimeBuckets,
  validateTimeBucketsOptions,
} from "../stats/time-buckets.js";

/** WindowStats is a snapshot of the calls a failure window currently holds. */
export interface WindowStats {
  readonly calls: number;
  readonly failures: number;
  readonly slowCalls: number;
}

/**
 * FailureWindow remembers recent call outcomes, either the last N calls
 * (count-based) or the calls of the last T milliseconds (time-based).
 */
export interface FailureWindow {
  /** record adds one call outcome at time `now`. */
  record(failed: boolean, slow: boolean, now: number): void;
  /** stats summarises the window as seen at `now`. */
  stats(now: number): WindowStats;
  /** reset forgets every outcome. */
  reset(): void;
}

/**
 * FailureWindowOptions picks the window kind. A count window never forgets
 * quiet periods (an hour-old failure still counts); a time window does, which
 * suits traffic that comes and goes. `size` is 1..100_000; time `buckets`
 * defaults to 10 (see createTimeBuckets).
 */
export type FailureWindowOptions =
  | { readonly type: "count"; readonly size: number }
  | { readonly type: "time"; readonly windowMs: number; readonly buckets?: number };

/**
 * validateFailureWindowOptions throws a RangeError naming the bad value.
 * @private
 */
export function validateFailureWindowOptions(options: FailureWindowOptions): void {
  if (options.type === "count") {
    if (!Number.isInteger(options.size) || options.size < 1 || options.size > 100_000) {
      throw new RangeError(`window size ${options.size} must be an integer in 1..100000`);
    }
  } else if (options.type === "time") {
    validateTimeBucketsOptions(options);
  } else {
    const type = String((options as { type: unknown }).type);
    throw new RangeError(`window type ${type} must be "count" or "time"`);
  }
}

/** createFailureWindow builds a count-based or time-based failure window. */
export function createFailureWindow(options: FailureWindowOptions): FailureWindow {
  validateFailureWindowOptions(options);
  return buildFailureWindow(options);
}

/**
 * buildFailureWindow skips validation, for owners that validated once up front
 * and then build thousands of windows (breaker registry, outlier detector).
 * @private
 */
export function buildFailureWindow(options: FailureWindowOptions): FailureWindow {
  return options.type === "count" ? new CountWindow(options.size) : new TimeWindow(options);
}

const FAILED = 1;
const SLOW = 2;

// Classes behind the factories keep methods on the prototype: a registry of
// 10k breakers pays for fields and a typed array each, not for closures.
class CountWindow implements FailureWindow {
  // One byte of bit flags per call instead of an object per call.
  private readonly ring: Uint8Array;
  private next = 0;
  private filled = 0;
  private failures = 0;
  private slowCalls = 0;

  constructor(size: number) {
    this.ring = new Uint8Array(size);
  }

  record(failed: boolean, slow: boolean): void {
    if (this.filled === this.ring.length) {
      const old = this.ring[this.next]!;
      if (old & FAILED) this.failures--;
      if (old & SLOW) this.slowCalls--;
    } else {
      this.filled++;
    }
    this.ring[this.next] = (failed ? FAILED : 0) | (slow ? SLOW : 0);
    if (failed) this.failures++;
    if (slow) this.slowCalls++;
    this.next = (this.next + 1) % this.ring.length;
  }

  stats(): WindowStats {
    return { calls: this.filled, failures: this.failures, slowCalls: this.slowCalls };
  }

  reset(): void {
    this.ring.fill(0);
    this.next = 0;
    this.filled = 0;
    this.failures = 0;
    this.slowCalls = 0;
  }
}

const CALLS = 0;
const FAILURES = 1;
const SLOW_CALLS = 2;

class TimeWindow implements FailureWindow {
  private readonly buckets: TimeBuckets;

  constructor(options: { readonly windowMs: number; readonly buckets?: number }) {
    this.buckets = createTimeBuckets({
      windowMs: options.windowMs,
      buckets: options.buckets,
      fields: 3,
    });
  }

  record(failed: boolean, slow: boolean, now: number): void {
    this.buckets.add(CALLS, now);
    if (failed) this.buckets.add(FAILURES, now);
    if (slow) this.buckets.add(SLOW_CALLS, now);
  }

  stats(now: number): WindowStats {
    return {
      calls: this.buckets.sum(CALLS, now),
      failures: this.buckets.sum(FAILURES, now),
      slowCalls: this.buckets.sum(SLOW_CALLS, now),
    };
  }

  reset(): void {
    this.buckets.reset();
  }
}
