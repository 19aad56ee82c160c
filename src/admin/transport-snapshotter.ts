import type { BalancerSnapshot } from "../balancer/balancer.js";
import type { BalancerEvent } from "../balancer/balancer-events.js";
import type { BreakerEvent } from "../breaker/breaker-events.js";
import type { BreakerRegistry } from "../breaker/breaker-registry.js";
import type { Clock } from "../clock.js";
import type { MirrorEvent } from "../mirror/mirror-events.js";
import type { RetryEvent } from "../retry/retry-events.js";
import type { RetryStage } from "../retry/retry-interceptor.js";
import { snapshotCallCounts, sumCallCounts } from "../state/call-counts.js";
import type {
  BreakerSnapshot,
  BreakerTransitionRecord,
  MethodCallsSnapshot,
  RetrySnapshot,
  TransportSnapshot,
} from "../state/snapshot.js";
import type { CallCounters } from "./call-counters.js";

/** BREAKER_HISTORY_SIZE is how many transitions a breaker's snapshot keeps. */
export const BREAKER_HISTORY_SIZE = 16;

// Breakers whose history is kept at most (a transport with thousands of
// methods keeps the latest ones).
const MAX_BREAKER_HISTORIES = 1024;

/** TransportSnapshotDeps are the transport's parts a snapshot reads. */
export interface TransportSnapshotDeps {
  readonly target: string;
  readonly clock: Clock;
  readonly balancer: { snapshot(): BalancerSnapshot };
  readonly calls: CallCounters;
  /** breakers is undefined when circuit breaking is off. */
  readonly breakers: BreakerRegistry | undefined;
  /** retry is undefined when retries are off. */
  readonly retry: RetryStage | undefined;
  readonly isClosed: () => boolean;
}

/**
 * TransportSnapshotter takes TransportSnapshots. It also listens to the
 * transport's events for what no object keeps (retry counters, breaker
 * transitions): events are rare next to calls, so this costs the call path
 * nothing.
 */
export interface TransportSnapshotter {
  /** onEvent receives every event of the transport. */
  onEvent(event: BalancerEvent | RetryEvent | BreakerEvent | MirrorEvent): void;
  /** snapshot takes a snapshot now. */
  snapshot(): TransportSnapshot;
}

/** createTransportSnapshotter builds the snapshotter of one transport. */
export function createTransportSnapshotter(deps: TransportSnapshotDeps): TransportSnapshotter {
  const counts = { retries: 0, hedges: 0, giveUps: 0, budgetExhausted: 0 };
  const histories = new Map<string, BreakerTransitionRecord[]>();

  function recordTransition(event: BreakerEvent): void {
    let list = histories.get(event.key);
    if (list === undefined) {
      if (histories.size >= MAX_BREAKER_HISTORIES) {
        const oldest = histories.keys().next().value;
        if (oldest !== undefined) histories.delete(oldest);
      }
      list = [];
      histories.set(event.key, list);
    }
    list.push(
      Object.freeze({ from: event.from, to: event.to, reason: event.reason, at: event.at }),
    );
    if (list.length > BREAKER_HISTORY_SIZE) list.shift();
  }

  function breakers(now: number): readonly BreakerSnapshot[] {
    const registry = deps.breakers;
    if (registry === undefined) return Object.freeze([]);
    const out: BreakerSnapshot[] = [];
    for (const key of registry.keys()) {
      const breaker = registry.peek(key);
      if (breaker === undefined) continue;
      const state = breaker.state(now);
      const stats = breaker.stats(now);
      out.push(
        Object.freeze({
          key,
          state: state.type,
          calls: stats.calls,
          failures: stats.failures,
          slowCalls: stats.slowCalls,
          failureRate: stats.calls === 0 ? null : stats.failures / stats.calls,
          openCount: state.type === "closed" ? 0 : state.openCount,
          nextProbeAt: state.type === "open" ? state.until : null,
          probesInFlight: state.type === "half-open" ? state.probesInFlight : 0,
          history: Object.freeze([...(histories.get(key) ?? [])]),
        }),
      );
    }
    return Object.freeze(out);
  }

  function retry(now: number): RetrySnapshot | null {
    const stage = deps.retry;
    if (stage === undefined) return null;
    const { budget, budgetOptions: o, hedging: h } = stage;
    return Object.freeze({
      budget:
        budget === undefined || o === undefined
          ? null
          : Object.freeze({
              available: budget.available(now),
              withdrawn: budget.withdrawn,
              exhausted: budget.exhausted,
              ratio: o.ratio,
              minRetriesPerSecond: o.minRetriesPerSecond,
              ttlMs: o.ttlMs,
            }),
      hedging:
        h === undefined
          ? null
          : Object.freeze({
              delayMs: h.delayMs,
              minDelayMs: h.minDelayMs,
              maxAttempts: h.maxAttempts,
              methods: h.methods === undefined ? null : Object.freeze([...h.methods]),
            }),
      ...counts,
    });
  }

  return {
    onEvent(event) {
      switch (event.type) {
        case "retry":
          counts.retries++;
          break;
        case "hedge":
          counts.hedges++;
          break;
        case "give-up":
          counts.giveUps++;
          break;
        case "budget-exhausted":
          counts.budgetExhausted++;
          break;
        case "breaker":
          recordTransition(event as BreakerEvent);
          break;
      }
    },
    snapshot() {
      // Read together, so that clock times map to wall time (see wallTimeMs).
      const now = deps.clock.now();
      const wallTimeMs = Date.now();
      const b = deps.balancer.snapshot();
      const methodCounts = deps.calls.methods();
      const methods: MethodCallsSnapshot[] = [];
      for (const [method, c] of methodCounts) {
        methods.push(Object.freeze({ method, ...snapshotCallCounts(c) }));
      }
      return Object.freeze({
        kind: "transport",
        target: deps.target,
        takenAt: now,
        wallTimeMs,
        policy: b.policy,
        closed: deps.isClosed(),
        resolver: b.resolver,
        endpoints: b.endpoints,
        picks: b.picks,
        calls: snapshotCallCounts(sumCallCounts(methodCounts.values())),
        methods: Object.freeze(methods),
        retry: retry(now),
        breakers: breakers(now),
      });
    },
  };
}
