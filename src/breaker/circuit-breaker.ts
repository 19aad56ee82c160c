import { Code } from "@connectrpc/connect";
import { stripUndefined } from "../strip-undefined.js";
import {
  type CallOutcome,
  createFailureClassifier,
  DEFAULT_FAILURE_CODES,
  type FailureClassifier,
} from "./call-outcome.js";
import {
  buildFailureAccrual,
  type FailureAccrual,
  type ResolvedFailureAccrualOptions,
  resolveFailureAccrualOptions,
  type TripReason,
} from "./failure-accrual.js";
import type { FailureWindowOptions, WindowStats } from "./failure-window.js";

/**
 * CircuitState is a breaker's state, an immutable snapshot.
 * - `closed`: calls flow; outcomes are watched.
 * - `open`: calls are refused until `until`; `openCount` counts opens since
 *   the breaker last closed and sets how long this one lasts.
 * - `half-open`: a few probe calls test the target; all must succeed.
 */
export type CircuitState =
  | { readonly type: "closed" }
  | { readonly type: "open"; readonly until: number; readonly openCount: number }
  | {
      readonly type: "half-open";
      readonly probesInFlight: number;
      readonly successes: number;
      readonly openCount: number;
    };

/**
 * TransitionReason says why a breaker changed state: a TripReason (closed →
 * open), `open-elapsed` (open → half-open), `probe-failed` (half-open → open)
 * or `probes-succeeded` (half-open → closed).
 */
export type TransitionReason = TripReason | "open-elapsed" | "probe-failed" | "probes-succeeded";

/** CircuitTransition is the event emitted on every state change. */
export interface CircuitTransition {
  readonly from: CircuitState["type"];
  readonly to: CircuitState["type"];
  readonly reason: TransitionReason;
  /** at is the time passed to the call that caused the transition. */
  readonly at: number;
  /** state is the new state. */
  readonly state: CircuitState;
}

/**
 * Admission is tryAcquire's answer. An admitted call must be released exactly
 * once with its outcome and the time it ended (extra releases are ignored).
 * A refused call gets `retryAtMs`, when the breaker will admit a probe, or
 * undefined while half-open probes are still out (their outcome decides).
 */
export type Admission =
  | { readonly admitted: true; release(outcome: CallOutcome, now: number): void }
  | {
      readonly admitted: false;
      readonly state: "open" | "half-open";
      readonly retryAtMs: number | undefined;
    };

/**
 * CircuitBreakerOptions configures createCircuitBreaker. Defaults
 * (CIRCUIT_BREAKER_DEFAULTS): failureRateThreshold 0.5, minimumCalls 20,
 * consecutiveFailures 0 (off), slowCallMs undefined (off),
 * slowCallRateThreshold 0.5, window count 100 (the last 100 calls), openMs
 * 5_000, openMultiplier 2, maxOpenMs 60_000, halfOpenProbes 3, failureCodes
 * UNAVAILABLE/INTERNAL/UNKNOWN/DEADLINE_EXCEEDED.
 */
export interface CircuitBreakerOptions {
  /** failureRateThreshold in [0, 1] opens on failures / calls >= it; 0 is off. */
  readonly failureRateThreshold?: number;
  /** minimumCalls the window must hold before a rate may open the breaker, >= 1. */
  readonly minimumCalls?: number;
  /** consecutiveFailures opens after this many failures in a row; 0 is off. */
  readonly consecutiveFailures?: number;
  /** slowCallMs makes a call slower than this "slow"; undefined turns slow-call detection off. */
  readonly slowCallMs?: number | undefined;
  /** slowCallRateThreshold in (0, 1] opens on slow calls / calls >= it, when slowCallMs is set. */
  readonly slowCallRateThreshold?: number;
  /** window holds the outcomes the rate rules look at. */
  readonly window?: FailureWindowOptions;
  /** openMs is how long the first open lasts, > 0. */
  readonly openMs?: number;
  /** openMultiplier grows each re-open without an intervening close, >= 1. */
  readonly openMultiplier?: number;
  /** maxOpenMs caps an open's length, >= openMs. */
  readonly maxOpenMs?: number;
  /** halfOpenProbes is how many probes are admitted, and must all succeed, to close, >= 1. */
  readonly halfOpenProbes?: number;
  /** failureCodes are the codes that count as failures; other errors count as successes. */
  readonly failureCodes?: readonly number[];
  /** onTransition receives every state change, after it happened. */
  readonly onTransition?: ((transition: CircuitTransition) => void) | undefined;
}

/** CIRCUIT_BREAKER_DEFAULTS are the defaults documented on CircuitBreakerOptions. */
export const CIRCUIT_BREAKER_DEFAULTS = Object.freeze({
  // Half the calls failing is past "a bad replica" and into "the target is down".
  failureRateThreshold: 0.5,
  minimumCalls: 20,
  // Off: one replica failing fast (a start-up burst of its errors, or all of
  // its calls in flight when it dies) can make 10 failures in a row although
  // the service is fine; the count window below catches a real outage fast.
  consecutiveFailures: 0,
  slowCallMs: undefined,
  slowCallRateThreshold: 0.5,
  // The last 100 attempts, as Resilience4j's default: after a healthy period a
  // sudden total outage opens the breaker after ~50 failures (well under a
  // second at 100 calls/s), where a 10 s time window full of earlier
  // successes would take seconds.
  window: Object.freeze({ type: "count", size: 100 } as const),
  // 5 s, doubling to 60 s: quick to retry a blip, gentle on a long outage.
  openMs: 5_000,
  openMultiplier: 2,
  maxOpenMs: 60_000,
  halfOpenProbes: 3,
  failureCodes: DEFAULT_FAILURE_CODES,
  onTransition: undefined,
});

/**
 * ResolvedCircuitBreakerOptions are validated options, shared by every breaker
 * of a registry so that 10k breakers validate once.
 * @private
 */
export interface ResolvedCircuitBreakerOptions {
  readonly accrual: ResolvedFailureAccrualOptions;
  readonly classify: FailureClassifier;
  readonly slowCallMs: number | undefined;
  readonly openMs: number;
  readonly openMultiplier: number;
  readonly maxOpenMs: number;
  readonly halfOpenProbes: number;
}

/**
 * CircuitBreaker is a pure state machine guarding one target: it decides, it
 * never calls anything. Time is passed in and transitions out of `open` are
 * evaluated lazily when the breaker is next asked, so there are no timers.
 */
export interface CircuitBreaker {
  /** tryAcquire asks to send one call at `now`. */
  tryAcquire(now: number): Admission;
  /**
   * refusal is what tryAcquire would answer at `now` if it refuses, without
   * acquiring anything: undefined when a call would be admitted. It lets a
   * caller skip building an attempt that the breaker is going to refuse.
   */
  refusal(now: number): Extract<Admission, { admitted: false }> | undefined;
  /** state is the state at `now` (an elapsed open turns half-open here). */
  state(now: number): CircuitState;
  /** stats summarises the closed-state window at `now`, for metrics. */
  stats(now: number): WindowStats;
}

const CLOSED: CircuitState = Object.freeze({ type: "closed" });

/**
 * resolveCircuitBreakerOptions validates options (RangeError naming the bad
 * value) and merges CIRCUIT_BREAKER_DEFAULTS.
 * @private
 */
export function resolveCircuitBreakerOptions(
  options: Omit<CircuitBreakerOptions, "onTransition"> = {},
): ResolvedCircuitBreakerOptions {
  const o = { ...CIRCUIT_BREAKER_DEFAULTS, ...stripUndefined(options) };
  const classify = createFailureClassifier(o.failureCodes);
  if (o.slowCallMs !== undefined && (!(o.slowCallMs >= 0) || !Number.isFinite(o.slowCallMs))) {
    throw new RangeError(`slowCallMs ${o.slowCallMs} must be a finite number >= 0`);
  }
  if (!(o.slowCallRateThreshold > 0 && o.slowCallRateThreshold <= 1)) {
    throw new RangeError(`slowCallRateThreshold ${o.slowCallRateThreshold} must be in (0, 1]`);
  }
  if (!(o.openMs > 0) || !Number.isFinite(o.openMs)) {
    throw new RangeError(`openMs ${o.openMs} must be a finite number > 0`);
  }
  if (!(o.openMultiplier >= 1) || !Number.isFinite(o.openMultiplier)) {
    throw new RangeError(`openMultiplier ${o.openMultiplier} must be a finite number >= 1`);
  }
  if (!(o.maxOpenMs >= o.openMs) || !Number.isFinite(o.maxOpenMs)) {
    throw new RangeError(`maxOpenMs ${o.maxOpenMs} must be a finite number >= openMs ${o.openMs}`);
  }
  if (!Number.isInteger(o.halfOpenProbes) || o.halfOpenProbes < 1) {
    throw new RangeError(`halfOpenProbes ${o.halfOpenProbes} must be an integer >= 1`);
  }
  const accrual = resolveFailureAccrualOptions({
    window: o.window,
    consecutiveFailures: o.consecutiveFailures,
    failureRateThreshold: o.failureRateThreshold,
    slowCallRateThreshold: o.slowCallMs === undefined ? 0 : o.slowCallRateThreshold,
    minimumCalls: o.minimumCalls,
  });
  return Object.freeze({
    accrual,
    classify,
    slowCallMs: o.slowCallMs,
    openMs: o.openMs,
    openMultiplier: o.openMultiplier,
    maxOpenMs: o.maxOpenMs,
    halfOpenProbes: o.halfOpenProbes,
  });
}

/**
 * createCircuitBreaker builds a breaker. Closed → open when the failure rate,
 * the consecutive-failure run or the slow-call rate reaches its threshold
 * (the shared FailureAccrual rules). Open → half-open once the open time,
 * `min(maxOpenMs, openMs * openMultiplier ** (openCount - 1))`, has elapsed.
 * Half-open admits `halfOpenProbes` probes: any failed (or slow) probe
 * re-opens for longer, all succeeding closes and resets the open count.
 * CANCELED outcomes teach nothing: they free their slot and are not recorded.
 * Outcomes of calls admitted before the last transition are ignored.
 */
export function createCircuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  const { onTransition, ...rest } = options;
  return buildCircuitBreaker(resolveCircuitBreakerOptions(rest), onTransition);
}

/**
 * buildCircuitBreaker builds a breaker from pre-validated options.
 * @private
 */
export function buildCircuitBreaker(
  o: ResolvedCircuitBreakerOptions,
  onTransition?: (transition: CircuitTransition) => void,
): CircuitBreaker {
  return new Breaker(o, onTransition);
}

// A class behind the factory: a registry holds 10k of these, and prototype
// methods cost nothing per instance where closures would cost ~100 bytes each.
class Breaker implements CircuitBreaker {
  private readonly o: ResolvedCircuitBreakerOptions;
  private readonly onTransition: ((transition: CircuitTransition) => void) | undefined;
  private readonly accrual: FailureAccrual;
  private current: CircuitState = CLOSED;
  // Bumped on every transition; a permit from an older epoch is stale.
  private epoch = 0;

  constructor(
    o: ResolvedCircuitBreakerOptions,
    onTransition: ((transition: CircuitTransition) => void) | undefined,
  ) {
    this.o = o;
    this.onTransition = onTransition;
    this.accrual = buildFailureAccrual(o.accrual);
  }

  tryAcquire(now: number): Admission {
    this.advance(now);
    const state = this.current;
    switch (state.type) {
      case "closed":
        return this.permit(this.epoch, false);
      case "open":
        return { admitted: false, state: "open", retryAtMs: state.until };
      case "half-open":
        if (state.probesInFlight + state.successes >= this.o.halfOpenProbes) {
          return { admitted: false, state: "half-open", retryAtMs: undefined };
        }
        this.current = Object.freeze({ ...state, probesInFlight: state.probesInFlight + 1 });
        return this.permit(this.epoch, true);
    }
  }

  refusal(now: number): Extract<Admission, { admitted: false }> | undefined {
    this.advance(now);
    const state = this.current;
    if (state.type === "open") {
      return { admitted: false, state: "open", retryAtMs: state.until };
    }
    if (
      state.type === "half-open" &&
      state.probesInFlight + state.successes >= this.o.halfOpenProbes
    ) {
      return { admitted: false, state: "half-open", retryAtMs: undefined };
    }
    return undefined;
  }

  state(now: number): CircuitState {
    this.advance(now);
    return this.current;
  }

  stats(now: number): WindowStats {
    return this.accrual.stats(now);
  }

  private permit(epoch: number, probe: boolean): Admission {
    let released = false;
    return {
      admitted: true,
      release: (outcome, now) => {
        if (released) return;
        released = true;
        if (epoch !== this.epoch) return;
        if (probe) this.releaseProbe(outcome, now);
        else this.releaseClosed(outcome, now);
      },
    };
  }

  private releaseClosed(outcome: CallOutcome, now: number): void {
    if (outcome.code === Code.Canceled) return;
    const failed = this.o.classify(outcome);
    const reason = this.accrual.record(failed, this.isSlow(outcome), now);
    if (reason !== undefined) this.open(reason, 1, now);
  }

  private releaseProbe(outcome: CallOutcome, now: number): void {
    const state = this.current;
    if (state.type !== "half-open") return;
    const { probesInFlight, successes, openCount } = state;
    if (outcome.code === Code.Canceled) {
      this.current = Object.freeze({ ...state, probesInFlight: probesInFlight - 1 });
    } else if (this.o.classify(outcome) || this.isSlow(outcome)) {
      this.open("probe-failed", openCount + 1, now);
    } else if (successes + 1 >= this.o.halfOpenProbes) {
      this.accrual.reset();
      this.transition(CLOSED, "probes-succeeded", now);
    } else {
      this.current = Object.freeze({
        type: "half-open",
        probesInFlight: probesInFlight - 1,
        successes: successes + 1,
        openCount,
      });
    }
  }

  private isSlow(outcome: CallOutcome): boolean {
    return this.o.slowCallMs !== undefined && outcome.latencyMs > this.o.slowCallMs;
  }

  private advance(now: number): void {
    const state = this.current;
    if (state.type === "open" && now >= state.until) {
      const halfOpen: CircuitState = Object.freeze({
        type: "half-open",
        probesInFlight: 0,
        successes: 0,
        openCount: state.openCount,
      });
      this.transition(halfOpen, "open-elapsed", now);
    }
  }

  private open(reason: TransitionReason, openCount: number, now: number): void {
    const o = this.o;
    this.accrual.reset();
    const openMs = Math.min(o.maxOpenMs, o.openMs * o.openMultiplier ** (openCount - 1));
    this.transition(Object.freeze({ type: "open", until: now + openMs, openCount }), reason, now);
  }

  private transition(to: CircuitState, reason: TransitionReason, now: number): void {
    const from = this.current.type;
    this.current = to;
    this.epoch++;
    this.onTransition?.({ from, to: to.type, reason, at: now, state: to });
  }
}
