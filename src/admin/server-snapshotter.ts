import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import type { Clock } from "../clock.js";
import type { IdempotencyEvent } from "../idempotency/events.js";
import type { IdempotencyStore } from "../idempotency/store.js";
import type { ConcurrencyLimitOptions } from "../limit/concurrency-limit.js";
import { snapshotCallCounts, sumCallCounts } from "../state/call-counts.js";
import type {
  IdempotencySnapshot,
  MethodSnapshot,
  RegistrationSnapshot,
  ServerSnapshot,
  ServiceSnapshot,
  SocketSnapshot,
} from "../state/snapshot.js";
import type { CallCounters } from "./call-counters.js";

// As in the concurrency limit: health is exempt from a single number limit.
const HEALTH_SERVICE = "grpc.health.v1.Health";
// As CONCURRENCY_LIMIT_DEFAULTS.pushbackMs.
const DEFAULT_PUSHBACK_MS = 50;

/** ServerSnapshotDeps are the server's parts a snapshot reads. */
export interface ServerSnapshotDeps {
  readonly clock: Clock;
  readonly calls: CallCounters;
  /** health reads the status table (`""` is the whole server). */
  readonly health: {
    get(service: string): number | undefined;
    services(): string[];
  };
  readonly address: () => { readonly address: string; readonly url: string } | undefined;
  readonly state: () => ServerSnapshot["state"];
  readonly inFlight: () => number;
  readonly connections: () => number;
  readonly sockets: () => readonly SocketSnapshot[];
  readonly concurrencyLimit: ConcurrencyLimitOptions | undefined;
  /** idempotencyStore is undefined when idempotency is off. */
  readonly idempotencyStore: IdempotencyStore | undefined;
  readonly registration: () => RegistrationSnapshot | null;
}

/**
 * ServerSnapshotter takes ServerSnapshots; it counts idempotency events,
 * which no object keeps, from the server's event stream.
 */
export interface ServerSnapshotter {
  /** onEvent receives the server's events. */
  onEvent(event: IdempotencyEvent | { readonly type: string }): void;
  /** snapshot takes a snapshot now. */
  snapshot(): ServerSnapshot;
}

/** createServerSnapshotter builds the snapshotter of one server. */
export function createServerSnapshotter(deps: ServerSnapshotDeps): ServerSnapshotter {
  const idempotencyEvents = new Map<string, number>();
  const limit = deps.concurrencyLimit;
  const limitOf = (method: string): number | null => {
    // An adaptive limit moves: its current value is the mesh_concurrency_limit metric.
    if (limit === undefined || limit.maxInFlight === undefined) return null;
    const service = method.slice(0, method.lastIndexOf("/"));
    if (typeof limit.maxInFlight === "number") {
      return service === HEALTH_SERVICE ? null : limit.maxInFlight;
    }
    return limit.maxInFlight[method] ?? limit.maxInFlight[service] ?? null;
  };

  function idempotency(): IdempotencySnapshot | null {
    const store = deps.idempotencyStore;
    if (store === undefined) return null;
    const stats = hasStats(store) ? store.stats() : undefined;
    return Object.freeze({
      store: stats === undefined ? "custom" : "memory",
      records:
        stats === undefined
          ? null
          : Object.freeze({
              completed: stats.completed,
              inProgress: stats.inProgress,
              bytes: stats.bytes,
              evicted: stats.evicted ?? 0,
            }),
      events: Object.freeze(Object.fromEntries(idempotencyEvents)),
    });
  }

  return {
    onEvent(event) {
      // Registry events ("registered", "error"...) show in the registration instead.
      if (!IDEMPOTENCY_EVENT_TYPES.has(event.type)) return;
      idempotencyEvents.set(event.type, (idempotencyEvents.get(event.type) ?? 0) + 1);
    },
    snapshot() {
      // Read together, so that clock times map to wall time (see wallTimeMs).
      const now = deps.clock.now();
      const wallTimeMs = Date.now();
      const bound = deps.address();
      const services: ServiceSnapshot[] = [];
      for (const name of deps.health.services()) {
        if (name === "") continue;
        services.push(Object.freeze({ name, health: statusName(deps.health.get(name)) }));
      }
      const counts = deps.calls.methods();
      const methods: MethodSnapshot[] = [];
      for (const [method, c] of counts) {
        methods.push(Object.freeze({ method, ...snapshotCallCounts(c), limit: limitOf(method) }));
      }
      return Object.freeze({
        kind: "server",
        takenAt: now,
        wallTimeMs,
        address: bound?.address ?? null,
        url: bound?.url ?? null,
        state: deps.state(),
        health: statusName(deps.health.get("")),
        services: Object.freeze(services),
        inFlight: deps.inFlight(),
        connections: deps.connections(),
        sockets: Object.freeze(deps.sockets().map((x) => Object.freeze({ ...x }))),
        calls: snapshotCallCounts(sumCallCounts(counts.values())),
        methods: Object.freeze(methods),
        concurrencyLimit:
          limit === undefined
            ? null
            : Object.freeze({
                maxInFlight:
                  typeof limit.maxInFlight === "number"
                    ? limit.maxInFlight
                    : Object.freeze({ ...limit.maxInFlight }),
                pushbackMs: limit.pushbackMs ?? DEFAULT_PUSHBACK_MS,
              }),
        idempotency: idempotency(),
        registration: deps.registration(),
      });
    },
  };
}

const IDEMPOTENCY_EVENT_TYPES: ReadonlySet<string> = new Set<IdempotencyEvent["type"]>([
  "claimed",
  "waiting",
  "replayed",
  "conflict",
  "completed",
  "released",
  "too-large",
  "claim-lost",
  "claim-expired",
  "rolled-back",
  "store-error",
]);

function statusName(status: number | undefined): string {
  return status === undefined ? "UNKNOWN" : (ServingStatus[status] ?? String(status));
}

interface StoreStats {
  readonly completed: number;
  readonly inProgress: number;
  readonly bytes: number;
  readonly evicted?: number;
}

// The memory store reports its occupancy; other stores keep theirs elsewhere.
function hasStats(store: IdempotencyStore): store is IdempotencyStore & { stats(): StoreStats } {
  return typeof (store as { stats?: unknown }).stats === "function";
}
