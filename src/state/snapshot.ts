// State snapshots of running transports and servers: plain, frozen,
// JSON-serialisable data (no class instances, no undefined values: absent
// sections are null), times in clock milliseconds (see takenAt and
// wallTimeMs for wall time), durations ending in `Ms`.
// Types only, so that every floor can name them.

/** CallCountsSnapshot counts calls through one channel, subchannel or method. */
export interface CallCountsSnapshot {
  /** started counts calls begun since creation. */
  readonly started: number;
  /** succeeded counts calls that ended OK. */
  readonly succeeded: number;
  /** failed counts calls that ended with an error (cancellations too). */
  readonly failed: number;
  /** inFlight is started - succeeded - failed: calls running now. */
  readonly inFlight: number;
  /** lastStartedAt is the clock time the last call began; null before the first. */
  readonly lastStartedAt: number | null;
}

/** ResolverSnapshot is the resolver's state as the balancer sees it. */
export interface ResolverSnapshot {
  /** resolved says whether the first endpoint set arrived. */
  readonly resolved: boolean;
  /** resolvedAt is when the resolver produced the set in use; null before. */
  readonly resolvedAt: number | null;
  /** staleSince is when the resolver lost its source and kept the last set; null when fresh. */
  readonly staleSince: number | null;
  /** staleForMs is how long the set has been stale at `takenAt`; null when fresh. */
  readonly staleForMs: number | null;
  /** lastError is the resolver's latest error message until it next pushes a set; null when none. */
  readonly lastError: string | null;
}

/** EjectionRecord is one entry of an endpoint's outlier-detection history. */
export interface EjectionRecord {
  /** type: ejected, restored (probe succeeded) or ejection-skipped (cap reached). */
  readonly type: "ejected" | "restored" | "ejection-skipped";
  /** at is the clock time of the change. */
  readonly at: number;
  /** reason is why it was ejected (or would have been); null for restored. */
  readonly reason: string | null;
  /** until is when an ejection ends; null otherwise. */
  readonly until: number | null;
  /** ejectionMs is an ejection's length; null otherwise. */
  readonly ejectionMs: number | null;
}

/** EjectionSnapshot is an endpoint's outlier-detection state. */
export interface EjectionSnapshot {
  /** state: healthy, ejected, or probing (ejection over, the next outcome decides). */
  readonly state: "healthy" | "ejected" | "probing";
  /** ejectionCount is the multiplier of the next ejection's length. */
  readonly ejectionCount: number;
  /** until is when the current ejection ends; null when not ejected. */
  readonly until: number | null;
  /** history holds the latest ejections and restorations, oldest first. */
  readonly history: readonly EjectionRecord[];
}

/** EndpointSnapshot is one endpoint of a transport's target. */
export interface EndpointSnapshot {
  readonly address: string;
  readonly weight: number;
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * status: `ready` (the picker may choose it), `ejected` (outlier detection
   * holds it out), or `held` (it left the resolver's set and is kept during
   * removalGraceMs while it still answers; it is ready too).
   */
  readonly status: "ready" | "ejected" | "held";
  /**
   * connection is the HTTP/2 connection state (`connecting`, `open`, `idle`,
   * `verifying`, `error`, `closed`), or `none` before the first pick opens one.
   */
  readonly connection: string;
  /** rttMs is the peak-EWMA RTT estimate; null when the policy keeps none or the endpoint is not ready. */
  readonly rttMs: number | null;
  /** pending is the number of attempts in flight to it. */
  readonly pending: number;
  /** picks is how many of the last `picks.window` picks chose it. */
  readonly picks: number;
  /** pickShare is picks / picks counted, in 0..1 (0 before any pick). */
  readonly pickShare: number;
  /** ejection is its outlier state; null when outlier detection is off. */
  readonly ejection: EjectionSnapshot | null;
  /** calls counts the attempts sent to it (while it keeps a connection). */
  readonly calls: CallCountsSnapshot;
}

/** BreakerTransitionRecord is one breaker state change. */
export interface BreakerTransitionRecord {
  readonly from: "closed" | "open" | "half-open";
  readonly to: "closed" | "open" | "half-open";
  readonly reason: string;
  readonly at: number;
}

/** BreakerSnapshot is one circuit breaker of a transport. */
export interface BreakerSnapshot {
  /** key is `target pkg.Service/Method` (or `target pkg.Service` with service scope). */
  readonly key: string;
  readonly state: "closed" | "open" | "half-open";
  /** calls, failures and slowCalls are the closed-state window's counts. */
  readonly calls: number;
  readonly failures: number;
  readonly slowCalls: number;
  /** failureRate is failures / calls; null with no calls in the window. */
  readonly failureRate: number | null;
  /** openCount counts opens since the breaker last closed. */
  readonly openCount: number;
  /** nextProbeAt is when an open breaker admits a probe; null when not open. */
  readonly nextProbeAt: number | null;
  /** probesInFlight counts half-open probes out. */
  readonly probesInFlight: number;
  /** history holds the latest transitions, oldest first. */
  readonly history: readonly BreakerTransitionRecord[];
}

/** RetryBudgetSnapshot is the level of a transport's retry budget. */
export interface RetryBudgetSnapshot {
  /** available is how many retries the budget would grant now. */
  readonly available: number;
  /** withdrawn counts retries and hedges granted since creation. */
  readonly withdrawn: number;
  /** exhausted counts retries refused for lack of budget since creation. */
  readonly exhausted: number;
  readonly ratio: number;
  readonly minRetriesPerSecond: number;
  readonly ttlMs: number;
}

/** HedgingSnapshot is a transport's hedging configuration. */
export interface HedgingSnapshot {
  readonly delayMs: number | "p95";
  readonly minDelayMs: number;
  readonly maxAttempts: number;
  /** methods lists the hedged methods; null means every NO_SIDE_EFFECTS unary method. */
  readonly methods: readonly string[] | null;
}

/** RetrySnapshot is a transport's retry state and counters since creation. */
export interface RetrySnapshot {
  /** budget is null when the budget is off. */
  readonly budget: RetryBudgetSnapshot | null;
  /** hedging is null when hedging is off. */
  readonly hedging: HedgingSnapshot | null;
  /** retries counts retry attempts started. */
  readonly retries: number;
  /** hedges counts hedged attempts started (beyond the first). */
  readonly hedges: number;
  /** giveUps counts calls that failed after the retry policy said no more. */
  readonly giveUps: number;
  /** budgetExhausted counts retries or hedges refused by the budget. */
  readonly budgetExhausted: number;
}

/** TransportSnapshot is the state of one mesh transport. */
export interface TransportSnapshot {
  readonly kind: "transport";
  /** target is the target string the transport was built with. */
  readonly target: string;
  /**
   * takenAt is the clock time of the snapshot. Clock times are the
   * transport's or server's clock (default `performance.now()`, monotonic,
   * not wall time): a time `t` happened at wall time
   * `wallTimeMs - (takenAt - t)`.
   */
  readonly takenAt: number;
  /** wallTimeMs is `Date.now()` when the snapshot was taken. */
  readonly wallTimeMs: number;
  /** policy is the load-balancing policy. */
  readonly policy: string;
  /** closed says whether close() was called. */
  readonly closed: boolean;
  readonly resolver: ResolverSnapshot;
  /** endpoints in the set in use (held removals included), in resolver order. */
  readonly endpoints: readonly EndpointSnapshot[];
  /** picks: how many recent picks the shares count (window: the most kept). */
  readonly picks: { readonly window: number; readonly counted: number };
  /** calls counts logical calls (one per application call, retries not counted). */
  readonly calls: CallCountsSnapshot;
  /** methods counts logical calls per method that was called, by name. */
  readonly methods: readonly MethodCallsSnapshot[];
  /** retry is null when retries are off. */
  readonly retry: RetrySnapshot | null;
  /** breakers lists the live circuit breakers; empty when none was used or they are off. */
  readonly breakers: readonly BreakerSnapshot[];
}

/** ServiceSnapshot is one service a server serves. */
export interface ServiceSnapshot {
  /** name is the fully-qualified service name. */
  readonly name: string;
  /** health is its grpc.health.v1 status name (`SERVING`, `NOT_SERVING`...). */
  readonly health: string;
}

/** MethodCallsSnapshot is one method's call counts. */
export interface MethodCallsSnapshot extends CallCountsSnapshot {
  /** method is `pkg.Service/Method`. */
  readonly method: string;
}

/** MethodSnapshot is one method's call counts on a server. */
export interface MethodSnapshot extends MethodCallsSnapshot {
  /** limit is the method's concurrency limit; null when unlimited. */
  readonly limit: number | null;
}

/** IdempotencySnapshot is a server's idempotency store and counters since creation. */
export interface IdempotencySnapshot {
  /** store names the store kind when known (`memory`), else `custom`. */
  readonly store: string;
  /** records is the store's occupancy when it reports one (memory store); null otherwise. */
  readonly records: {
    readonly completed: number;
    readonly inProgress: number;
    readonly bytes: number;
    /** evicted counts completed records dropped for room before their TTL. */
    readonly evicted: number;
  } | null;
  /** events counts idempotency events by type (`claimed`, `replayed`, `conflict`...). */
  readonly events: Readonly<Record<string, number>>;
}

/** RegistrationSnapshot is a server's registration in a registry. */
export interface RegistrationSnapshot {
  readonly registry: string;
  readonly service: string;
  readonly instanceId: string;
  /** address is the advertised address; null before listen(). */
  readonly address: string | null;
  /**
   * state: `registered` (the lease is held), `registering` (first attempt or
   * background retries), `deregistered` (not serving, or closed).
   */
  readonly state: "registered" | "registering" | "deregistered";
  /** registeredAt is when the current registration landed; null when not registered. */
  readonly registeredAt: number | null;
  /** failures counts failed registration attempts since creation. */
  readonly failures: number;
  /** lastError is the latest registration error message; null when none. */
  readonly lastError: string | null;
}

/** SocketSnapshot is one connection (HTTP/2 session) a server holds. */
export interface SocketSnapshot {
  /** remote is the peer's `host:port` (IPv6 in brackets). */
  readonly remote: string;
  /** local is the server's own `host:port` of the connection. */
  readonly local: string;
  /**
   * tls is set on a server with `identity`: the certificates the connection
   * was established with (after a rotation, which ones still use the old one).
   */
  readonly tls?: {
    /** certificateFingerprint256 is the server certificate the connection was established with. */
    readonly certificateFingerprint256: string | null;
    /** peerFingerprint256 is the verified client certificate's; null when none. */
    readonly peerFingerprint256: string | null;
    /** peerSpiffeId is the verified client's SPIFFE ID; null when none. */
    readonly peerSpiffeId: string | null;
  };
}

/** ServerSnapshot is the state of one mesh server. */
export interface ServerSnapshot {
  readonly kind: "server";
  /**
   * takenAt is the clock time of the snapshot. Clock times are the
   * transport's or server's clock (default `performance.now()`, monotonic,
   * not wall time): a time `t` happened at wall time
   * `wallTimeMs - (takenAt - t)`.
   */
  readonly takenAt: number;
  /** wallTimeMs is `Date.now()` when the snapshot was taken. */
  readonly wallTimeMs: number;
  /** address is the bound `host:port`; null before listen(). */
  readonly address: string | null;
  /** url is `http://host:port` (https with TLS); null before listen(). */
  readonly url: string | null;
  /** state: `new` (not listening yet), `serving`, `closing`. */
  readonly state: "new" | "serving" | "closing";
  /** health is the whole server's status (`""` in grpc.health.v1). */
  readonly health: string;
  /** services lists the services given in `routes`, with their health. */
  readonly services: readonly ServiceSnapshot[];
  /** inFlight counts HTTP/2 streams being served now (every protocol). */
  readonly inFlight: number;
  /** connections counts open HTTP/2 sessions. */
  readonly connections: number;
  /** sockets lists the open HTTP/2 sessions' addresses. */
  readonly sockets: readonly SocketSnapshot[];
  /** calls totals the method counts. */
  readonly calls: CallCountsSnapshot;
  /** methods lists the methods that were called, by name. */
  readonly methods: readonly MethodSnapshot[];
  /** concurrencyLimit is the configured limit; null when none. */
  readonly concurrencyLimit: {
    readonly maxInFlight: number | Readonly<Record<string, number>>;
    readonly pushbackMs: number;
  } | null;
  /** idempotency is null when it is off. */
  readonly idempotency: IdempotencySnapshot | null;
  /** registration is null without one. */
  readonly registration: RegistrationSnapshot | null;
}

/** TransportSnapshotSource is anything that can take a TransportSnapshot (a MeshTransport). */
export interface TransportSnapshotSource {
  snapshot(): TransportSnapshot;
}

/** ServerSnapshotSource is anything that can take a ServerSnapshot (a MeshServer). */
export interface ServerSnapshotSource {
  snapshot(): ServerSnapshot;
}
