import { stripUndefined } from "../strip-undefined.js";
import {
  buildFailureWindow,
  type FailureWindow,
  type FailureWindowOptions,
  validateFailureWindowOptions,
  type WindowStats,
} from "./failure-window.js";

/**
 * TripReason says which rule of a failure accrual fired.
 * - `consecutive-failures`: N failures in a row.
 * - `failure-rate`: the window's failure ratio reached its threshold.
 * - `slow-call-rate`: the window's slow-call ratio reached its threshold.
 */
export type TripReason = "consecutive-failures" | "failure-rate" | "slow-call-rate";

/**
 * FailureAccrualOptions configures the shared "is this target unhealthy?"
 * decision used by both the circuit breaker and the outlier detector.
 * Defaults (FAILURE_ACCRUAL_DEFAULTS): time window 10 s in 10 buckets,
 * consecutiveFailures 0 (off), failureRateThreshold 0 (off),
 * slowCallRateThreshold 0 (off), minimumCalls 20.
 */
export interface FailureAccrualOptions {
  /** window holds the outcomes the rate rules look at. */
  readonly window?: FailureWindowOptions;
  /** consecutiveFailures trips after this many failures in a row; 0 is off. */
  readonly consecutiveFailures?: number;
  /** failureRateThreshold in [0, 1] trips on failures / calls >= it; 0 is off. */
  readonly failureRateThreshold?: number;
  /** slowCallRateThreshold in [0, 1] trips on slow calls / calls >= it; 0 is off. */
  readonly slowCallRateThreshold?: number;
  /** minimumCalls the window must hold before a rate rule may trip (>= 1). */
  readonly minimumCalls?: number;
}

/** ResolvedFailureAccrualOptions are validated options with defaults applied. @private */
export interface ResolvedFailureAccrualOptions {
  readonly window: FailureWindowOptions;
  readonly consecutiveFailures: number;
  readonly failureRateThreshold: number;
  readonly slowCallRateThreshold: number;
  readonly minimumCalls: number;
}

/** FAILURE_ACCRUAL_DEFAULTS are the defaults documented on FailureAccrualOptions. */
export const FAILURE_ACCRUAL_DEFAULTS: ResolvedFailureAccrualOptions = Object.freeze({
  // 10 s is long enough to hold a meaningful sample at modest rates and short
  // enough that a recovered target stops being judged by old failures.
  window: Object.freeze({ type: "time", windowMs: 10_000, buckets: 10 } as const),
  consecutiveFailures: 0,
  failureRateThreshold: 0,
  slowCallRateThreshold: 0,
  // Below ~20 calls a ratio is noise: 2 failures out of 3 calls says little.
  minimumCalls: 20,
});

/**
 * FailureAccrual is the per-target memory of outcomes plus the rules that
 * decide it is unhealthy. Breakers open on it; outlier detectors eject on it.
 */
export interface FailureAccrual {
  /** consecutiveFailures is the current run of failures (0 after a success). */
  readonly consecutiveFailures: number;
  /**
   * record adds an outcome and returns the rule that fires with it, checking
   * consecutive failures first, then failure rate, then slow-call rate.
   */
  record(failed: boolean, slow: boolean, now: number): TripReason | undefined;
  /** stats summarises the window at `now`. */
  stats(now: number): WindowStats;
  /** reset forgets all outcomes, for example after the target recovered. */
  reset(): void;
}

/**
 * resolveFailureAccrualOptions validates options (RangeError naming the bad
 * value) and merges FAILURE_ACCRUAL_DEFAULTS.
 * @private
 */
export function resolveFailureAccrualOptions(
  options: FailureAccrualOptions = {},
): ResolvedFailureAccrualOptions {
  const o: ResolvedFailureAccrualOptions = {
    ...FAILURE_ACCRUAL_DEFAULTS,
    ...stripUndefined(options),
  };
  validateFailureWindowOptions(o.window);
  if (!Number.isInteger(o.consecutiveFailures) || o.consecutiveFailures < 0) {
    throw new RangeError(`consecutiveFailures ${o.consecutiveFailures} must be an integer >= 0`);
  }
  checkRatio("failureRateThreshold", o.failureRateThreshold);
  checkRatio("slowCallRateThreshold", o.slowCallRateThreshold);
  if (!Number.isInteger(o.minimumCalls) || o.minimumCalls < 1) {
    throw new RangeError(`minimumCalls ${o.minimumCalls} must be an integer >= 1`);
  }
  return Object.freeze(o);
}

/** createFailureAccrual builds an accrual from options (see FailureAccrualOptions). */
export function createFailureAccrual(options: FailureAccrualOptions = {}): FailureAccrual {
  return buildFailureAccrual(resolveFailureAccrualOptions(options));
}

/**
 * buildFailureAccrual skips validation, for owners that validated once and
 * build one accrual per target.
 * @private
 */
export function buildFailureAccrual(o: ResolvedFailureAccrualOptions): FailureAccrual {
  return new Accrual(o);
}

// A class behind the factory keeps per-target cost to fields (see failure-window.ts).
class Accrual implements FailureAccrual {
  private readonly o: ResolvedFailureAccrualOptions;
  private readonly window: FailureWindow;
  consecutiveFailures = 0;

  constructor(o: ResolvedFailureAccrualOptions) {
    this.o = o;
    this.window = buildFailureWindow(o.window);
  }

  record(failed: boolean, slow: boolean, now: number): TripReason | undefined {
    const o = this.o;
    this.window.record(failed, slow, now);
    this.consecutiveFailures = failed ? this.consecutiveFailures + 1 : 0;
    if (o.consecutiveFailures > 0 && this.consecutiveFailures >= o.consecutiveFailures) {
      return "consecutive-failures";
    }
    if (o.failureRateThreshold === 0 && o.slowCallRateThreshold === 0) return undefined;
    const s = this.window.stats(now);
    if (s.calls < o.minimumCalls) return undefined;
    if (o.failureRateThreshold > 0 && s.failures / s.calls >= o.failureRateThreshold) {
      return "failure-rate";
    }
    if (o.slowCallRateThreshold > 0 && s.slowCalls / s.calls >= o.slowCallRateThreshold) {
      return "slow-call-rate";
    }
    return undefined;
  }

  stats(now: number): WindowStats {
    return this.window.stats(now);
  }

  reset(): void {
    this.window.reset();
    this.consecutiveFailures = 0;
  }
}

function checkRatio(name: string, value: number): void {
  if (!(value >= 0 && value <= 1)) {
    throw new RangeError(`${name} ${value} must be in [0, 1]`);
  }
}
