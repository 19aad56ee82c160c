import { Code } from "@connectrpc/connect";
import {
  type CallOutcome,
  createFailureClassifier,
  DEFAULT_FAILURE_CODES,
} from "../breaker/call-outcome.js";
import {
  buildFailureAccrual,
  type FailureAccrual,
  type ResolvedFailureAccrualOptions,
  resolveFailureAccrualOptions,
} from "../breaker/failure-accrual.js";
import type { Endpoint } from "../discovery/endpoint.js";
import { stripUndefined } from "../strip-undefined.js";

/**
 * OutlierEjectionReason says why an endpoint was ejected.
 * - `consecutive-failures`: N failures in a row.
 * - `success-rate`: its success rate fell below `mean - stdevFactor * stdev` of its peers.
 * - `failure-percentage`: its failure ratio reached the configured threshold.
 * - `probe-failed`: the first call after its ejection ended failed.
 */
export type OutlierEjectionReason =
  | "consecutive-failures"
  | "success-rate"
  | "failure-percentage"
  | "probe-failed";

/**
 * OutlierEvent is what the detector reports; logging and metrics subscribe.
 * `ejection-skipped` means an ejection was due but maxEjectionPercent (or the
 * last-endpoint rule) forbade it.
 */
export type OutlierEvent =
  | {
      readonly type: "ejected";
      readonly address: string;
      readonly reason: OutlierEjectionReason;
      readonly at: number;
      readonly ejectionMs: number;
      readonly until: number;
      readonly ejectionCount: number;
    }
  | { readonly type: "restored"; readonly address: string; readonly at: number }
  | {
      readonly type: "ejection-skipped";
      readonly address: string;
      readonly reason: OutlierEjectionReason;
      readonly at: number;
    };

/**
 * EndpointHealth is an immutable view of one endpoint in the detector.
 * `probing` means its ejection time is over and the next outcome decides:
 * success restores it, failure ejects it again for longer.
 */
export type EndpointHealth =
  | { readonly state: "healthy"; readonly ejectionCount: number }
  | { readonly state: "ejected"; readonly until: number; readonly ejectionCount: number }
  | { readonly state: "probing"; readonly ejectionCount: number };

/**
 * SuccessRateOptions configures Envoy's success-rate ejection. Defaults
 * (Envoy's): minimumHosts 5, requestVolume 100, stdevFactor 1.9.
 */
export interface SuccessRateOptions {
  /** minimumHosts with enough volume are needed for a meaningful mean, >= 1. */
  readonly minimumHosts?: number;
  /** requestVolume is the least calls an endpoint needs in the interval to be judged, >= 1. */
  readonly requestVolume?: number;
  /** stdevFactor: eject below `mean - stdevFactor * stdev`, >= 0. */
  readonly stdevFactor?: number;
}

/**
 * FailurePercentageOptions configures threshold ejection. Defaults (Envoy's):
 * threshold 0.85, minimumHosts 5, requestVolume 50.
 */
export interface FailurePercentageOptions {
  /** threshold ejects an endpoint whose failures / calls is >= it, in (0, 1]. */
  readonly threshold?: number;
  /** minimumHosts with enough volume are needed before any is judged, >= 1. */
  readonly minimumHosts?: number;
  /** requestVolume is the least calls an endpoint needs in the interval to be judged, >= 1. */
  readonly requestVolume?: number;
}

/**
 * OutlierDetectorOptions configures createOutlierDetector. Defaults
 * (OUTLIER_DETECTOR_DEFAULTS): consecutiveFailures 5, failureCodes
 * UNAVAILABLE/INTERNAL/UNKNOWN/DEADLINE_EXCEEDED, intervalMs 10_000,
 * successRate on (Envoy defaults), failurePercentage off, baseEjectionMs
 * 30_000, maxEjectionMs 300_000, maxEjectionPercent 50.
 */
export interface OutlierDetectorOptions {
  /** consecutiveFailures ejects after this many failures in a row; 0 is off. */
  readonly consecutiveFailures?: number;
  /** failureCodes are the codes that count as failures; other errors count as successes. */
  readonly failureCodes?: readonly number[];
  /** intervalMs is both the success-rate window and how often it is evaluated, > 0. */
  readonly intervalMs?: number;
  /** successRate configures statistical ejection; false turns it off. */
  readonly successRate?: SuccessRateOptions | false;
  /** failurePercentage configures threshold ejection; false (default) turns it off. */
  readonly failurePercentage?: FailurePercentageOptions | false;
  /** baseEjectionMs is the first ejection's length; the n-th lasts n times as long. */
  readonly baseEjectionMs?: number;
  /** maxEjectionMs caps an ejection's length, >= baseEjectionMs. */
  readonly maxEjectionMs?: number;
  /** maxEjectionPercent of known endpoints may be ejected at once, 0..100. */
  readonly maxEjectionPercent?: number;
  /** onEvent receives ejections and restorations, after the state changed. */
  readonly onEvent?: ((event: OutlierEvent) => void) | undefined;
}

/** SUCCESS_RATE_DEFAULTS are the defaults documented on SuccessRateOptions. */
export const SUCCESS_RATE_DEFAULTS: Required<SuccessRateOptions> = Object.freeze({
  minimumHosts: 5,
  requestVolume: 100,
  // 1.9 stdev below the mean flags roughly the worst 3% of a normal fleet.
  stdevFactor: 1.9,
});

/** FAILURE_PERCENTAGE_DEFAULTS are the defaults documented on FailurePercentageOptions. */
export const FAILURE_PERCENTAGE_DEFAULTS: Required<FailurePercentageOptions> = Object.freeze({
  threshold: 0.85,
  minimumHosts: 5,
  requestVolume: 50,
});

/** OUTLIER_DETECTOR_DEFAULTS are the defaults documented on OutlierDetectorOptions. */
export const OUTLIER_DETECTOR_DEFAULTS = Object.freeze({
  consecutiveFailures: 5,
  failureCodes: DEFAULT_FAILURE_CODES,
  intervalMs: 10_000,
  successRate: SUCCESS_RATE_DEFAULTS,
  failurePercentage: false,
  // 30 s lets a crashed replica restart before it is probed again.
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  // Ejecting more than half the fleet would overload the rest: at that point
  // the problem is not the endpoints, and spreading load is the better bet.
  maxEjectionPercent: 50,
} as const);

/**
 * OutlierDetector decides, per endpoint, whether it should leave the ready
 * list (Envoy-style outlier detection, or gRFC A50). It is pure: every method
 * takes the time, and evaluation happens lazily when a method sees that an
 * interval has passed, so there are no timers. The balancer feeds it outcomes
 * and hands `filter(...)` to its picker builder.
 */
export interface OutlierDetector {
  /**
   * setEndpoints replaces the set of known endpoints, keeping state for
   * addresses still present. maxEjectionPercent is a share of this set.
   */
  setEndpoints(endpoints: readonly Endpoint[]): void;
  /**
   * record feeds one call outcome; unknown addresses and CANCELED outcomes are
   * ignored. Outcomes whose code is not a failure code count as successes.
   */
  record(address: string, outcome: Pick<CallOutcome, "ok" | "code">, now: number): void;
  /** isEjected says whether the address must stay out of the ready list at `now`. */
  isEjected(address: string, now: number): boolean;
  /** filter returns the endpoints not ejected at `now`, in order, as a frozen array. */
  filter(endpoints: readonly Endpoint[], now: number): readonly Endpoint[];
  /** health is the address's state at `now`; undefined when unknown. */
  health(address: string, now: number): EndpointHealth | undefined;
  /**
   * nextChangeAt is the earliest time an ejection ends, so a balancer can
   * rebuild its picker then with one timer; undefined when none is ejected.
   */
  nextChangeAt(): number | undefined;
  /** evaluate runs the interval's statistical checks now, then restarts the interval. */
  evaluate(now: number): void;
}

const HEALTHY = 0;
const EJECTED = 1;
const PROBING = 2;

interface Entry {
  readonly address: string;
  readonly accrual: FailureAccrual;
  state: typeof HEALTHY | typeof EJECTED | typeof PROBING;
  until: number;
  ejections: number;
}

/** createOutlierDetector builds a detector; options are validated here (RangeError). */
export function createOutlierDetector(options: OutlierDetectorOptions = {}): OutlierDetector {
  const o = { ...OUTLIER_DETECTOR_DEFAULTS, ...stripUndefined(options) };
  const classify = createFailureClassifier(o.failureCodes);
  if (!(o.intervalMs > 0) || !Number.isFinite(o.intervalMs)) {
    throw new RangeError(`intervalMs ${o.intervalMs} must be a finite number > 0`);
  }
  if (!(o.baseEjectionMs > 0) || !Number.isFinite(o.baseEjectionMs)) {
    throw new RangeError(`baseEjectionMs ${o.baseEjectionMs} must be a finite number > 0`);
  }
  if (!(o.maxEjectionMs >= o.baseEjectionMs) || !Number.isFinite(o.maxEjectionMs)) {
    throw new RangeError(
      `maxEjectionMs ${o.maxEjectionMs} must be a finite number >= baseEjectionMs ${o.baseEjectionMs}`,
    );
  }
  if (!(o.maxEjectionPercent >= 0 && o.maxEjectionPercent <= 100)) {
    throw new RangeError(`maxEjectionPercent ${o.maxEjectionPercent} must be in 0..100`);
  }
  const successRate = o.successRate === false ? undefined : resolveSuccessRate(o.successRate);
  const failurePercentage =
    o.failurePercentage === false ? undefined : resolveFailurePercentage(o.failurePercentage);
  // The consecutive-failure rule is the breaker's own accrual code; the window
  // spans one interval and feeds the statistical checks.
  const accrualOptions: ResolvedFailureAccrualOptions = resolveFailureAccrualOptions({
    window: { type: "time", windowMs: o.intervalMs, buckets: 10 },
    consecutiveFailures: o.consecutiveFailures,
  });
  const onEvent = o.onEvent;

  let entries = new Map<string, Entry>();
  let intervalStartedAt = Number.NaN;

  const refresh = (e: Entry, now: number): void => {
    if (e.state === EJECTED && now >= e.until) e.state = PROBING;
  };

  const ejectedCount = (now: number): number => {
    let count = 0;
    for (const e of entries.values()) {
      refresh(e, now);
      if (e.state === EJECTED) count++;
    }
    return count;
  };

  const eject = (e: Entry, reason: OutlierEjectionReason, now: number): void => {
    const total = entries.size;
    const allowed = Math.min(Math.floor((total * o.maxEjectionPercent) / 100), total - 1);
    if (ejectedCount(now) >= allowed) {
      onEvent?.({ type: "ejection-skipped", address: e.address, reason, at: now });
      return;
    }
    e.ejections++;
    const ejectionMs = Math.min(o.maxEjectionMs, o.baseEjectionMs * e.ejections);
    e.state = EJECTED;
    e.until = now + ejectionMs;
    e.accrual.reset();
    onEvent?.({
      type: "ejected",
      address: e.address,
      reason,
      at: now,
      ejectionMs,
      until: e.until,
      ejectionCount: e.ejections,
    });
  };

  const evaluate = (now: number): void => {
    intervalStartedAt = now;
    const judged: { entry: Entry; calls: number; failures: number }[] = [];
    for (const e of entries.values()) {
      refresh(e, now);
      if (e.state !== HEALTHY) continue;
      const s = e.accrual.stats(now);
      judged.push({ entry: e, calls: s.calls, failures: s.failures });
    }
    // Ejections decided on the same snapshot, worst first, so the cap keeps the best.
    const verdicts = new Map<Entry, OutlierEjectionReason>();
    if (successRate !== undefined) {
      const eligible = judged.filter((j) => j.calls >= successRate.requestVolume);
      if (eligible.length >= successRate.minimumHosts) {
        const rates = eligible.map((j) => 1 - j.failures / j.calls);
        const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
        const variance = rates.reduce((a, r) => a + (r - mean) ** 2, 0) / rates.length;
        const floor = mean - successRate.stdevFactor * Math.sqrt(variance);
        eligible.forEach((j, i) => {
          if (rates[i]! < floor) verdicts.set(j.entry, "success-rate");
        });
      }
    }
    if (failurePercentage !== undefined) {
      const eligible = judged.filter((j) => j.calls >= failurePercentage.requestVolume);
      if (eligible.length >= failurePercentage.minimumHosts) {
        for (const j of eligible) {
          if (j.failures / j.calls >= failurePercentage.threshold && !verdicts.has(j.entry)) {
            verdicts.set(j.entry, "failure-percentage");
          }
        }
      }
    }
    const worstFirst = judged
      .filter((j) => verdicts.has(j.entry))
      .sort((a, b) => b.failures / b.calls - a.failures / a.calls);
    for (const j of worstFirst) eject(j.entry, verdicts.get(j.entry)!, now);
    // Envoy's forgiveness: each healthy interval shortens the next ejection.
    for (const j of judged) {
      if (j.entry.state === HEALTHY && j.entry.ejections > 0 && !verdicts.has(j.entry)) {
        j.entry.ejections--;
      }
    }
  };

  const isEjected = (address: string, now: number): boolean => {
    const e = entries.get(address);
    if (e === undefined) return false;
    refresh(e, now);
    return e.state === EJECTED;
  };

  const maybeEvaluate = (now: number): void => {
    if (Number.isNaN(intervalStartedAt)) intervalStartedAt = now;
    else if (now - intervalStartedAt >= o.intervalMs) evaluate(now);
  };

  return {
    setEndpoints(endpoints) {
      const next = new Map<string, Entry>();
      for (const { address } of endpoints) {
        next.set(
          address,
          entries.get(address) ?? {
            address,
            accrual: buildFailureAccrual(accrualOptions),
            state: HEALTHY,
            until: 0,
            ejections: 0,
          },
        );
      }
      entries = next;
    },
    record(address, outcome, now) {
      const e = entries.get(address);
      if (e === undefined) return;
      maybeEvaluate(now);
      refresh(e, now);
      // A late outcome of a call sent before the ejection says nothing new, and
      // a cancelled call says when the client gave up, not how the server is.
      if (e.state === EJECTED || outcome.code === Code.Canceled) return;
      const failed = classify(outcome);
      if (e.state === PROBING) {
        if (failed) {
          eject(e, "probe-failed", now);
        } else {
          e.state = HEALTHY;
          e.accrual.reset();
          onEvent?.({ type: "restored", address, at: now });
        }
        return;
      }
      if (e.accrual.record(failed, false, now) === "consecutive-failures") {
        eject(e, "consecutive-failures", now);
      }
    },
    isEjected,
    filter(endpoints, now) {
      maybeEvaluate(now);
      return Object.freeze(endpoints.filter((ep) => !isEjected(ep.address, now)));
    },
    health(address, now) {
      const e = entries.get(address);
      if (e === undefined) return undefined;
      refresh(e, now);
      if (e.state === EJECTED) {
        return Object.freeze({ state: "ejected", until: e.until, ejectionCount: e.ejections });
      }
      return Object.freeze({
        state: e.state === PROBING ? "probing" : "healthy",
        ejectionCount: e.ejections,
      });
    },
    nextChangeAt() {
      let next: number | undefined;
      for (const e of entries.values()) {
        if (e.state === EJECTED && (next === undefined || e.until < next)) next = e.until;
      }
      return next;
    },
    evaluate,
  };
}

function resolveSuccessRate(options: SuccessRateOptions): Required<SuccessRateOptions> {
  const o = { ...SUCCESS_RATE_DEFAULTS, ...stripUndefined(options) };
  checkCount("successRate.minimumHosts", o.minimumHosts);
  checkCount("successRate.requestVolume", o.requestVolume);
  if (!(o.stdevFactor >= 0) || !Number.isFinite(o.stdevFactor)) {
    throw new RangeError(`successRate.stdevFactor ${o.stdevFactor} must be a finite number >= 0`);
  }
  return o;
}

function resolveFailurePercentage(
  options: FailurePercentageOptions,
): Required<FailurePercentageOptions> {
  const o = { ...FAILURE_PERCENTAGE_DEFAULTS, ...stripUndefined(options) };
  if (!(o.threshold > 0 && o.threshold <= 1)) {
    throw new RangeError(`failurePercentage.threshold ${o.threshold} must be in (0, 1]`);
  }
  checkCount("failurePercentage.minimumHosts", o.minimumHosts);
  checkCount("failurePercentage.requestVolume", o.requestVolume);
  return o;
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} ${value} must be an integer >= 1`);
  }
}
