import { Code, ConnectError } from "@connectrpc/connect";
import type { CallOutcome } from "../breaker/call-outcome.js";
import {
  BACKGROUND,
  type Clock,
  type ClockTimer,
  MAX_TIMER_DELAY_MS,
  systemClock,
} from "../clock.js";
import { createEndpointSet, type Endpoint, type EndpointSet } from "../discovery/endpoint.js";
import type { Resolver } from "../discovery/resolver.js";
import { type CallCounts, createCallCounts, snapshotCallCounts } from "../state/call-counts.js";
import type { EndpointSnapshot, ResolverSnapshot } from "../state/snapshot.js";
import type { BalancerEvent } from "./balancer-events.js";
import { createEjectionHistory } from "./ejection-history.js";
import { type EndpointLoads, syncEndpointLoads } from "./endpoint-load.js";
import { createLoadPenalty, type LoadPenaltyOptions, NO_LOAD_PENALTY } from "./load-penalty.js";
import {
  createOutlierDetector,
  type OutlierDetector,
  type OutlierDetectorOptions,
} from "./outlier-detector.js";
import type { PeakEwmaOptions } from "./peak-ewma.js";
import { createPickRing } from "./pick-ring.js";
import { EMPTY_PICKER, type Picker, type PickInfo } from "./picker.js";
import { type LoadBalancingPolicy, PICKER_FACTORIES } from "./picker-registry.js";
import { createSlowStart, NO_SLOW_START, type SlowStartOptions } from "./slow-start.js";
import { type HeldEndpoint, stabilizeEndpoints } from "./stabilize-endpoints.js";
import type { TrafficPolicy } from "./traffic-policy.js";
import { createTrafficRouting } from "./traffic-routing.js";

export type { LoadBalancingPolicy } from "./picker-registry.js";

/** Subchannel is the connection to one endpoint, created lazily by the balancer. */
export interface Subchannel {
  readonly address: string;
  /** close closes the connection; called once no call uses it any more. */
  close(): void;
  /**
   * state is the connection state, as Connect's Http2SessionManager reports
   * it (`closed`, `connecting`, `open`, `idle`, `verifying`, `error`).
   * Optional; the balancer reads it to let a held removal go as soon as its
   * connection fails or closes.
   */
  state?(): string;
}

export type { BalancerEvent } from "./balancer-events.js";

/** BalancerOptions configures createBalancer. */
export interface BalancerOptions<S extends Subchannel> {
  /** target names the balanced target in events and errors. */
  readonly target: string;
  /** resolver feeds endpoint snapshots; the balancer starts and closes it. */
  readonly resolver: Resolver;
  /** createSubchannel opens the connection to one endpoint (lazily, on first pick). */
  readonly createSubchannel: (endpoint: Endpoint) => S;
  /** policy picks among ready endpoints; default `p2c-ewma`. */
  readonly policy?: LoadBalancingPolicy;
  /** outlierDetection ejects failing endpoints; `false` turns it off. Default on. */
  readonly outlierDetection?: OutlierDetectorOptions | false;
  /** slowStart ramps a new endpoint's share over a window (p2c-ewma only); default off. */
  readonly slowStart?: SlowStartOptions | false;
  /**
   * removalGraceMs holds an endpoint that left the resolver's set in use for
   * this long while it still answers (Finagle's stabilized address sets), so
   * that mass deletions the registry undoes at once (etcd revoking every
   * lease after a pause) cost no call. It leaves at once when its connection
   * is refused, fails or closes (a draining server's GOAWAY), a call to it
   * fails UNAVAILABLE, or outlier detection ejects it. 0 applies removals at
   * once. Default BALANCER_DEFAULTS.removalGraceMs (5_000).
   */
  readonly removalGraceMs?: number;
  /** ewma tunes the peak-EWMA estimator (decayMs default 10 s, seedRttMs). */
  readonly ewma?: PeakEwmaOptions;
  /**
   * loadPenalty biases p2c-ewma away from an endpoint that sheds calls
   * (RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`): each shed answer
   * counts as a call in flight for its pushback time (LoadPenalty,
   * LOAD_PENALTY_DEFAULTS), and is not a latency sample (it is fast and would
   * make the overloaded endpoint look idle). Default on; false turns it off.
   */
  readonly loadPenalty?: LoadPenaltyOptions | false;
  /** clock for EWMA, ejection and slow start; default the system clock. */
  readonly clock?: Clock;
  /** random in [0, 1) for pickers; default Math.random. */
  readonly random?: () => number;
  /** onEvent receives typed events for logging and metrics. */
  readonly onEvent?: (event: BalancerEvent) => void;
  /**
   * trafficPolicy filters the ready endpoints per call before the policy
   * picks: header routes, weighted metadata subsets, zone-aware routing
   * (see TrafficPolicy). Default none; change it with setTrafficPolicy.
   */
  readonly trafficPolicy?: TrafficPolicy;
}

/**
 * NoEndpointError is the cause of the UNAVAILABLE a call gets when no endpoint
 * became ready in time: callers keep it even when the call's deadline fires at
 * the same moment, since it says why the deadline was missed.
 */
export class NoEndpointError extends Error {
  override readonly name = "NoEndpointError";
}

/** BalancerPickInfo is the PickInfo a balancer takes (kept as a name for compatibility). */
export type BalancerPickInfo = PickInfo;

/** BALANCER_DEFAULTS are the defaults documented on BalancerOptions. */
export const BALANCER_DEFAULTS = Object.freeze({
  policy: "p2c-ewma" as LoadBalancingPolicy,
  // Long enough to span an etcd pause's revoke-and-re-register (milliseconds)
  // and a registrar's re-grant after a restart (about a second); short enough
  // that a server that vanished without closing its connections (host gone)
  // gets no calls after 5 s even before outlier detection ejects it.
  removalGraceMs: 5_000,
});

// Connection states that say the subchannel reached its server at some point.
const CONNECTED_STATES = new Set(["open", "idle", "verifying"]);

/** BalancerPick is the endpoint and connection for one attempt, with its feedback hook. */
export interface BalancerPick<S extends Subchannel> {
  readonly endpoint: Endpoint;
  readonly subchannel: S;
  /** done reports the attempt's outcome exactly once (cancelled attempts too). */
  done(outcome: CallOutcome): void;
}

/** BalancerState is an immutable view of the balancer for status pages and tests. */
export interface BalancerState {
  readonly endpoints: readonly Endpoint[];
  readonly ready: readonly Endpoint[];
  readonly resolved: boolean;
  readonly resolvedAt: number | undefined;
  readonly staleSince: number | undefined;
}

/**
 * BalancerSnapshot is the balancer's part of a TransportSnapshot: frozen,
 * JSON-serialisable.
 */
export interface BalancerSnapshot {
  readonly policy: string;
  readonly resolver: ResolverSnapshot;
  readonly endpoints: readonly EndpointSnapshot[];
  readonly picks: { readonly window: number; readonly counted: number };
}

/** Balancer spreads attempts over a target's endpoints. */
export interface Balancer<S extends Subchannel> {
  /**
   * pick chooses an endpoint now, or returns undefined when none is ready.
   * Synchronous. Endpoints in `avoid` (failed attempts, hedges in flight) are
   * passed over while another endpoint is ready.
   */
  pick(info?: BalancerPickInfo): BalancerPick<S> | undefined;
  /**
   * estimateLatencyMs is the lowest peak-EWMA latency among ready endpoints
   * (p2c-ewma only; undefined otherwise): no attempt can be expected to finish
   * faster, so a retry with less time left is not worth sending.
   */
  estimateLatencyMs(): number | undefined;
  /**
   * waitForPick picks, waiting for the first resolution when there is none yet,
   * for up to `waitMs` or until `signal` aborts. It fails with UNAVAILABLE
   * naming the target when the resolved set is empty or the wait runs out
   * (CANCELED when the signal was cancelled).
   */
  waitForPick(
    signal: AbortSignal,
    waitMs: number,
    info?: BalancerPickInfo,
  ): Promise<BalancerPick<S>>;
  /** state is the current view. */
  state(): BalancerState;
  /**
   * setTrafficPolicy validates and swaps the traffic policy (undefined removes
   * it) and rebuilds the picker: the next pick follows it. A bad policy
   * throws TypeError/RangeError and leaves the old one in force.
   */
  setTrafficPolicy(policy: TrafficPolicy | undefined): void;
  /**
   * snapshot describes every endpoint in use (load, connection, share of the
   * last picks, ejection state and history) and the resolver's state. It
   * reads counters the call path keeps anyway; cost grows with the endpoints.
   */
  snapshot(): BalancerSnapshot;
  /** close stops the resolver and closes every subchannel. */
  close(): Promise<void>;
}

// Slow start is off by default, as in Envoy: with a seed taken from the other
// endpoints a new endpoint already starts at an average share.
const DEFAULT_SLOW_START: SlowStartOptions = { windowMs: 0 };

interface SubchannelEntry<S> {
  subchannel: S | undefined;
  active: number;
  removed: boolean;
  /** calls counts the attempts sent through this entry, for snapshots. */
  readonly calls: CallCounts;
  /** picks counts this entry's picks among the last ones (see PickRing). */
  picks: number;
}

/**
 * createBalancer owns a target's subchannels and publishes an immutable picker
 * built from the resolver's latest snapshot minus ejected endpoints. Picking is
 * synchronous; every outcome flows back through one `done` hook that feeds the
 * picker's load estimate and the outlier detector. A subchannel whose endpoint
 * leaves the set closes once its last call ends, so a draining server's
 * in-flight calls are never cut by the client.
 */
export function createBalancer<S extends Subchannel>(options: BalancerOptions<S>): Balancer<S> {
  const clock = options.clock ?? systemClock;
  const policy = options.policy ?? BALANCER_DEFAULTS.policy;
  if (!Object.hasOwn(PICKER_FACTORIES, policy)) {
    throw new RangeError(
      `policy ${JSON.stringify(policy)} must be one of ${Object.keys(PICKER_FACTORIES).join(", ")}`,
    );
  }
  const buildPicker = PICKER_FACTORIES[policy];
  const removalGraceMs = options.removalGraceMs ?? BALANCER_DEFAULTS.removalGraceMs;
  if (
    !Number.isFinite(removalGraceMs) ||
    removalGraceMs < 0 ||
    removalGraceMs > MAX_TIMER_DELAY_MS
  ) {
    throw new RangeError(`removalGraceMs ${removalGraceMs} must be in 0..${MAX_TIMER_DELAY_MS}`);
  }
  const slowStart =
    options.slowStart === false
      ? NO_SLOW_START
      : createSlowStart({ ...DEFAULT_SLOW_START, ...options.slowStart });
  const emit = options.onEvent ?? (() => {});
  const penalty =
    options.loadPenalty === false ? NO_LOAD_PENALTY : createLoadPenalty(options.loadPenalty);
  const extraLoad = options.loadPenalty === false ? undefined : penalty.extraLoad;
  const ejections = createEjectionHistory();
  const recentPicks = createPickRing<SubchannelEntry<S>>();
  const outlierOptions =
    options.outlierDetection === false ? undefined : (options.outlierDetection ?? {});
  const detector: OutlierDetector | undefined =
    outlierOptions === undefined
      ? undefined
      : createOutlierDetector({
          ...outlierOptions,
          onEvent: (e) => {
            ejections.record(e);
            emit({ ...e, source: "outlier", target: options.target });
            outlierOptions.onEvent?.(e);
          },
        });

  // resolved is the resolver's latest snapshot; set is what the balancer
  // uses: resolved plus the held removals (see stabilizeEndpoints).
  let resolved: EndpointSet | undefined;
  let set: EndpointSet | undefined;
  let held: ReadonlyMap<string, HeldEndpoint> = new Map();
  // Held addresses whose connection was seen up, or whose calls failed
  // UNAVAILABLE since the hold began.
  const seenConnected = new Set<string>();
  const failedWhileHeld = new Set<string>();
  let holdTimer: ClockTimer | undefined;
  // The resolver's latest error until it next pushes a snapshot: a call that
  // gives up waiting for endpoints says why the resolver had none.
  let resolverError: unknown;
  let picker: Picker = EMPTY_PICKER;
  let ready: readonly Endpoint[] = [];
  let loads: EndpointLoads = new Map();
  const subchannels = new Map<string, SubchannelEntry<S>>();
  const waiters = new Set<() => void>();
  let changeTimer: ClockTimer | undefined;
  let evaluateTimer: ClockTimer | undefined;
  let closed = false;
  const traffic = createTrafficRouting({
    target: options.target,
    policy: options.trafficPolicy,
    random: options.random,
    emit,
  });

  function rebuild(): void {
    if (set === undefined || closed) return;
    const now = clock.now();
    ready = detector === undefined ? set.endpoints : detector.filter(set.endpoints, now);
    loads = syncEndpointLoads(loads, ready, now, { ...options.ewma, ...seedFor(now) });
    penalty.retain(new Set(ready.map((e) => e.address)));
    const context = { loads, clock, slowStart, random: options.random, extraLoad };
    picker = traffic.wrap(ready, set.endpoints, (endpoints) => buildPicker(endpoints, context));
    scheduleChange();
    for (const w of [...waiters]) w();
  }

  // A new endpoint starts at the median RTT estimate of the known ones, so it
  // gets an average share at once: a fixed seed far above the fleet's real
  // latency would keep it idle for seconds (p2c never prefers it), and a zero
  // seed would send it a burst.
  function seedFor(now: number): { seedRttMs?: number } {
    if (options.ewma?.seedRttMs !== undefined || loads.size === 0) return {};
    const rtts = [...loads.values()].map((l) => l.ewma.rttMs(now)).sort((a, b) => a - b);
    const median = rtts[Math.floor(rtts.length / 2)];
    return median === undefined ? {} : { seedRttMs: median };
  }

  // One timer: the next moment an ejection ends, when the picker must change.
  function scheduleChange(): void {
    if (changeTimer !== undefined) clock.clearTimeout(changeTimer);
    changeTimer = undefined;
    const at = detector?.nextChangeAt();
    if (at !== undefined && !closed) {
      changeTimer = clock.setTimeout(rebuild, Math.max(0, at - clock.now()), BACKGROUND);
    }
  }

  function scheduleEvaluate(): void {
    if (detector === undefined || closed) return;
    const intervalMs = outlierOptions?.intervalMs ?? 10_000;
    evaluateTimer = clock.setTimeout(
      () => {
        const before = ready.length;
        detector.evaluate(clock.now());
        const after = set === undefined ? 0 : detector.filter(set.endpoints, clock.now()).length;
        if (after !== before) rebuild();
        scheduleEvaluate();
      },
      intervalMs,
      BACKGROUND,
    );
  }

  // isDead says whether a held endpoint stopped answering: its connection
  // failed, or closed after having been up (a draining server's GOAWAY), a
  // call to it failed UNAVAILABLE, or outlier detection ejected it.
  function isDead(address: string, now: number): boolean {
    if (failedWhileHeld.has(address)) return true;
    if (detector?.isEjected(address, now) === true) return true;
    const state = subchannels.get(address)?.subchannel?.state?.();
    if (state === undefined) return false;
    if (CONNECTED_STATES.has(state)) {
      seenConnected.add(address);
      return false;
    }
    return state === "error" || (state === "closed" && seenConnected.has(address));
  }

  function onUpdate(next: EndpointSet): void {
    if (closed) return;
    if (next.staleSince === undefined) resolverError = undefined;
    resolved = next;
    stabilize();
  }

  // stabilize applies the pure decision to the latest snapshot, then swaps
  // the set in use, closing subchannels of endpoints that really left.
  function stabilize(): void {
    if (resolved === undefined || closed) return;
    const now = clock.now();
    const dead = new Set<string>();
    const current = set?.endpoints ?? [];
    for (const e of current) {
      if (!resolved.endpoints.some((r) => r.address === e.address) && isDead(e.address, now)) {
        dead.add(e.address);
      }
    }
    const decision = stabilizeEndpoints({
      resolved: resolved.endpoints,
      current,
      held,
      dead,
      now,
      removalGraceMs,
    });
    for (const address of decision.newlyHeld) {
      emit({
        source: "balancer",
        type: "removal-held",
        target: options.target,
        address,
        graceMs: removalGraceMs,
      });
    }
    for (const { address, reason } of decision.applied) {
      emit({
        source: "balancer",
        type: "removal-applied",
        target: options.target,
        address,
        reason,
      });
    }
    for (const address of decision.returned) {
      emit({ source: "balancer", type: "removal-cancelled", target: options.target, address });
    }
    held = decision.held;
    for (const address of [...seenConnected]) if (!held.has(address)) seenConnected.delete(address);
    for (const address of [...failedWhileHeld])
      if (!held.has(address)) failedWhileHeld.delete(address);
    if (holdTimer !== undefined) clock.clearTimeout(holdTimer);
    holdTimer =
      decision.nextExpiryAt === undefined
        ? undefined
        : clock.setTimeout(stabilize, Math.max(0, decision.nextExpiryAt - now), BACKGROUND);
    const endpoints =
      decision.endpoints === resolved.endpoints && decision.held.size === 0
        ? resolved
        : createEndpointSet(decision.endpoints, resolved.resolvedAt, resolved.staleSince);
    applySet(endpoints);
  }

  function applySet(next: EndpointSet): void {
    const before = new Set(set?.endpoints.map((e) => e.address) ?? []);
    const after = new Set(next.endpoints.map((e) => e.address));
    const added = [...after].filter((a) => !before.has(a));
    const removed = [...before].filter((a) => !after.has(a));
    const first = set === undefined;
    set = next;
    detector?.setEndpoints(next.endpoints);
    for (const address of removed) {
      const entry = subchannels.get(address);
      if (entry !== undefined) {
        entry.removed = true;
        if (entry.active === 0) closeEntry(address, entry);
      }
    }
    for (const address of added) {
      // An endpoint that left and came back gets a fresh entry.
      const entry = subchannels.get(address);
      if (entry?.removed) {
        entry.removed = false;
      }
    }
    if (added.length > 0 || removed.length > 0 || first) {
      emit({
        source: "balancer",
        type: "endpoints",
        target: options.target,
        added,
        removed,
        size: after.size,
      });
    }
    rebuild();
  }

  function closeEntry(address: string, entry: SubchannelEntry<S>): void {
    subchannels.delete(address);
    entry.subchannel?.close();
  }

  function subchannelFor(endpoint: Endpoint): SubchannelEntry<S> {
    let entry = subchannels.get(endpoint.address);
    if (entry === undefined) {
      entry = {
        subchannel: undefined,
        active: 0,
        removed: false,
        calls: createCallCounts(),
        picks: 0,
      };
      subchannels.set(endpoint.address, entry);
    }
    entry.subchannel ??= options.createSubchannel(endpoint);
    return entry;
  }

  const balancer: Balancer<S> = {
    pick(info) {
      let picked = picker.pick(info);
      if (picked === undefined) return undefined;
      if (held.has(picked.endpoint.address) && isDead(picked.endpoint.address, clock.now())) {
        // A held endpoint that stopped answering leaves now; draw again.
        picked.done({ ok: false, code: Code.Canceled, latencyMs: 0 });
        stabilize();
        picked = picker.pick(info);
        if (picked === undefined) return undefined;
      }
      const address = picked.endpoint.address;
      const entry = subchannelFor(picked.endpoint);
      entry.active++;
      const calls = entry.calls;
      calls.started++;
      calls.lastStartedAt = clock.now();
      recentPicks.record(entry);
      let finished = false;
      return {
        endpoint: picked.endpoint,
        subchannel: entry.subchannel as S,
        done(outcome) {
          if (finished) return;
          finished = true;
          if (outcome.pushbackMs !== undefined && extraLoad !== undefined) {
            penalty.record(address, outcome.pushbackMs, clock.now());
            picked.done({ ...outcome, latencySample: false });
          } else {
            picked.done(outcome);
          }
          entry.active--;
          if (outcome.ok) calls.succeeded++;
          else calls.failed++;
          if (!outcome.ok && outcome.code === Code.Unavailable && held.has(address)) {
            failedWhileHeld.add(address);
            stabilize();
          }
          if (entry.removed && entry.active === 0 && subchannels.get(address) === entry) {
            closeEntry(address, entry);
          }
          if (detector !== undefined) {
            const wasEjected = detector.isEjected(address, clock.now());
            detector.record(address, outcome, clock.now());
            if (detector.isEjected(address, clock.now()) !== wasEjected) {
              // An ejected endpoint whose removal is held leaves for good.
              if (held.has(address)) stabilize();
              else rebuild();
            }
          }
        },
      };
    },
    waitForPick(signal, waitMs, info) {
      const now = balancer.pick(info);
      if (now !== undefined) return Promise.resolve(now);
      if (set !== undefined && set.endpoints.length === 0) {
        return Promise.reject(
          new ConnectError(
            `no endpoint of target ${JSON.stringify(options.target)} is ready: the resolver returned no endpoints`,
            Code.Unavailable,
          ),
        );
      }
      return new Promise((resolve, reject) => {
        let timer: ClockTimer | undefined;
        const finish = (error: ConnectError | undefined, pick?: BalancerPick<S>) => {
          waiters.delete(retry);
          signal.removeEventListener("abort", onAbort);
          if (timer !== undefined) clock.clearTimeout(timer);
          if (error !== undefined) reject(error);
          else resolve(pick as BalancerPick<S>);
        };
        const unavailable = (why: string, cause?: unknown) => {
          const message = `no endpoint of target ${JSON.stringify(options.target)} is ready: ${why}`;
          return new ConnectError(
            message,
            Code.Unavailable,
            undefined,
            undefined,
            new NoEndpointError(message, { cause }),
          );
        };
        const onAbort = () => {
          const reason = signal.reason as unknown;
          finish(
            reason instanceof ConnectError && reason.code === Code.Canceled
              ? reason
              : resolverError === undefined
                ? unavailable("the call ended while waiting for the resolver", reason)
                : unavailable(
                    `the call ended while waiting for the resolver: ${errorMessage(resolverError)}`,
                    resolverError,
                  ),
          );
        };
        const retry = () => {
          if (closed) {
            finish(unavailable("the transport is closed"));
          } else if (set !== undefined && set.endpoints.length === 0) {
            finish(unavailable("the resolver returned no endpoints"));
          } else {
            // A traffic policy may refuse the call (a subset with onEmpty "fail").
            let p: BalancerPick<S> | undefined;
            try {
              p = balancer.pick(info);
            } catch (e) {
              finish(ConnectError.from(e));
              return;
            }
            if (p !== undefined) finish(undefined, p);
          }
        };
        if (signal.aborted) {
          onAbort();
          return;
        }
        signal.addEventListener("abort", onAbort, { once: true });
        waiters.add(retry);
        timer = clock.setTimeout(() => {
          const why = `the resolver has not answered within ${Math.round(waitMs)} ms`;
          finish(
            resolverError === undefined
              ? unavailable(why)
              : unavailable(`${why}: ${errorMessage(resolverError)}`, resolverError),
          );
        }, waitMs);
      });
    },
    estimateLatencyMs() {
      if (policy !== "p2c-ewma" || ready.length === 0) return undefined;
      const now = clock.now();
      let best = Number.POSITIVE_INFINITY;
      for (const e of ready) {
        const rtt = loads.get(e.address)?.ewma.rttMs(now);
        if (rtt !== undefined && rtt < best) best = rtt;
      }
      return Number.isFinite(best) ? best : undefined;
    },
    state() {
      return Object.freeze({
        endpoints: set?.endpoints ?? [],
        ready,
        resolved: set !== undefined,
        resolvedAt: set?.resolvedAt,
        staleSince: set?.staleSince,
      });
    },
    setTrafficPolicy(policy) {
      traffic.set(policy);
      rebuild();
    },
    snapshot() {
      const now = clock.now();
      const counted = recentPicks.counted;
      const readySet = new Set(ready.map((e) => e.address));
      const endpoints = (set?.endpoints ?? []).map((e): EndpointSnapshot => {
        const entry = subchannels.get(e.address);
        const health = detector?.health(e.address, now);
        const picks = entry?.picks ?? 0;
        const rtt = policy === "p2c-ewma" ? loads.get(e.address)?.ewma.rttMs(now) : undefined;
        return Object.freeze({
          address: e.address,
          weight: e.weight,
          metadata: e.metadata,
          status: !readySet.has(e.address) ? "ejected" : held.has(e.address) ? "held" : "ready",
          connection: entry?.subchannel?.state?.() ?? "none",
          rttMs: rtt === undefined ? null : rtt,
          pending: entry?.active ?? 0,
          picks,
          pickShare: counted === 0 ? 0 : picks / counted,
          ejection:
            detector === undefined
              ? null
              : Object.freeze({
                  state: health?.state ?? "healthy",
                  ejectionCount: health?.ejectionCount ?? 0,
                  until: health?.state === "ejected" ? health.until : null,
                  history: ejections.of(e.address),
                }),
          calls: snapshotCallCounts(entry?.calls ?? createCallCounts()),
        });
      });
      const staleSince = set?.staleSince;
      return Object.freeze({
        policy,
        resolver: Object.freeze({
          resolved: set !== undefined,
          resolvedAt: set?.resolvedAt ?? null,
          staleSince: staleSince ?? null,
          staleForMs: staleSince === undefined ? null : Math.max(0, now - staleSince),
          lastError: resolverError === undefined ? null : errorMessage(resolverError),
        }),
        endpoints: Object.freeze(endpoints),
        picks: Object.freeze({ window: recentPicks.size, counted }),
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      if (changeTimer !== undefined) clock.clearTimeout(changeTimer);
      if (evaluateTimer !== undefined) clock.clearTimeout(evaluateTimer);
      if (holdTimer !== undefined) clock.clearTimeout(holdTimer);
      for (const w of [...waiters]) w();
      await options.resolver.close();
      for (const [address, entry] of subchannels) closeEntry(address, entry);
    },
  };

  options.resolver.start({
    onUpdate,
    onEvent: (e) => {
      if (e.type === "error") resolverError = e.error;
      emit({ ...e, source: "resolver" });
    },
  });
  scheduleEvaluate();
  return balancer;
}

function errorMessage(e: unknown): string {
  return e instanceof ConnectError ? e.rawMessage : e instanceof Error ? e.message : String(e);
}
