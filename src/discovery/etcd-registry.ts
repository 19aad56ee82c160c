import { Code, ConnectError } from "@connectrpc/connect";
import { type BackoffOptions, createBackoff } from "../call/backoff.js";
import { type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { createEtcdClient, type EtcdClient } from "./etcd-client.js";
import {
  type EtcdLeaseContext,
  type EtcdRecord,
  grantEtcdLease,
  maintainEtcdLease,
} from "./etcd-registry-lease.js";
import {
  assertEtcdSegment,
  etcdRecordKey,
  utf8,
  validateEtcdRegistration,
} from "./etcd-registry-record.js";
import { createEtcdResolver } from "./etcd-registry-resolver.js";
import {
  formatRegistrationRecord,
  type Registered,
  type Registration,
  type RegistryEvent,
  type ServiceRegistry,
} from "./registry.js";
import type { Resolver } from "./resolver.js";

export { EtcdWatchError } from "./etcd-registry-resolver.js";

/**
 * EtcdRegistryOptions configures createEtcdRegistry. Defaults
 * (ETCD_REGISTRY_DEFAULTS): prefix `/connect-mesh/services`, leaseTtlMs
 * 10_000, progressIntervalMs 5_000, retry backoff 100 ms doubling to 2 s.
 */
export interface EtcdRegistryOptions {
  /**
   * endpoints are etcd client addresses (`host:port` or `http://host:port`),
   * tried in order; default `MESH_ETCD_ENDPOINTS`, else `127.0.0.1:2379`.
   * Ignored when `client` is given.
   */
  readonly endpoints?: readonly string[];
  /**
   * client shares an etcd client (or wraps one, in tests). The registry does
   * not close a client it was given.
   */
  readonly client?: EtcdClient;
  /** prefix is the key prefix: records live at `<prefix>/<service>/<instanceId>`. */
  readonly prefix?: string;
  /**
   * leaseTtlMs is the lease time to live, rounded up to whole seconds (etcd's
   * unit). Keepalives go every TTL / 3; a killed server drops out of
   * resolvers within about this time. At least ETCD_MIN_LEASE_TTL_MS.
   */
  readonly leaseTtlMs?: number;
  /**
   * progressIntervalMs is how often a resolver asks its watch for a progress
   * response; a watch that answers nothing for 3 intervals is re-listed.
   */
  readonly progressIntervalMs?: number;
  /** retryBackoff paces retries after etcd errors (re-list, re-watch, re-register). */
  readonly retryBackoff?: BackoffOptions;
  /** clock drives keepalive, watchdog and retry timers and snapshot times. */
  readonly clock?: Clock;
  /** onEvent receives registration events (registered, lease-lost, errors). */
  readonly onEvent?: (event: RegistryEvent) => void;
}

/** ETCD_REGISTRY_DEFAULTS are the defaults documented on EtcdRegistryOptions. */
export const ETCD_REGISTRY_DEFAULTS = Object.freeze({
  prefix: "/connect-mesh/services",
  // grpc-go's etcd examples and most registries use 10 s: a crashed server
  // leaves within ~10 s, and a live one survives a few lost keepalives.
  leaseTtlMs: 10_000,
  // One tiny request per watch every 5 s; a dead watch is noticed in ~15 s.
  progressIntervalMs: 5_000,
  retryBackoff: Object.freeze({ initialMs: 100, maxMs: 2_000 }),
});

/**
 * ETCD_MIN_LEASE_TTL_MS is the smallest leaseTtlMs accepted. etcd counts TTLs
 * in whole seconds and its own minimum is about 1.5 × the election timeout
 * (1.5 s by default); below 2 s keepalives every TTL / 3 leave no slack.
 */
export const ETCD_MIN_LEASE_TTL_MS = 2_000;

/**
 * createEtcdRegistry returns a ServiceRegistry backed by etcd v3, compatible
 * with grpc-go's etcd naming records (`{"Addr":…,"Metadata":…}` under
 * `<prefix>/<service>/<instanceId>`).
 *
 * Decision: we do not wrap the npm `etcd3` package. It is dormant, misses
 * lost leases and drops watchers after compaction — the two failures a
 * registry must survive. We speak etcd's v3 gRPC API ourselves with
 * Connect-ES (see createEtcdClient), dogfooding the mesh transport.
 *
 * This file composes the parts, which mirror the mesh registry's file for
 * file: the lease keeper (etcd-registry-lease.ts: grant, put, keepalive,
 * re-grant after loss), the resolver (etcd-registry-resolver.ts: list +
 * watch, stale-on-outage) and the record codec (etcd-registry-record.ts).
 */
export function createEtcdRegistry(options: EtcdRegistryOptions = {}): ServiceRegistry {
  const opts = { ...ETCD_REGISTRY_DEFAULTS, ...stripUndefined(options) };
  validateEtcdRegistryOptions(opts);
  const clock = opts.clock ?? systemClock;
  const backoff = createBackoff(opts.retryBackoff);
  const ownsClient = opts.client === undefined;
  const client =
    opts.client ??
    createEtcdClient(opts.endpoints === undefined ? {} : { endpoints: opts.endpoints });
  const closing = new AbortController();
  const registrations = new Map<string, Registered>();
  const resolvers = new Set<Resolver>();

  function emit(event: RegistryEvent): void {
    try {
      opts.onEvent?.(event);
    } catch {
      // A listener's bug must not stop lease maintenance.
    }
  }

  const lease: EtcdLeaseContext = {
    client,
    clock,
    ttlMs: Math.ceil(opts.leaseTtlMs / 1000) * 1000,
    backoff,
    emit,
  };

  async function register(registration: Registration): Promise<Registered> {
    if (closing.signal.aborted) {
      throw new ConnectError("etcd registry is closed", Code.FailedPrecondition);
    }
    validateEtcdRegistration(registration);
    const key = etcdRecordKey(opts.prefix, registration.service, registration.instanceId);
    if (registrations.has(key)) {
      throw new TypeError(`instance ${JSON.stringify(key)} is already registered`);
    }
    const record: EtcdRecord = { registration, key, value: formatRegistrationRecord(registration) };
    const stop = new AbortController();
    let leaseId: bigint;
    try {
      leaseId = await grantEtcdLease(lease, record, AbortSignal.any([stop.signal, closing.signal]));
    } catch (e) {
      throw etcdRegistrationError(client, key, e);
    }
    const running = maintainEtcdLease(lease, record, leaseId, stop.signal);
    let deregistering: Promise<void> | undefined;
    const registered: Registered = {
      deregister() {
        deregistering ??= (async () => {
          stop.abort();
          const held = await running;
          registrations.delete(key);
          try {
            await client.kv.deleteRange({ key: utf8.encode(key) });
            if (held !== undefined) {
              await client.lease.leaseRevoke({ ID: held });
            }
          } catch (e) {
            // The lease expires on its own within the TTL.
            emit({ type: "error", error: e });
          }
          emit({ type: "deregistered", registration });
        })();
        return deregistering;
      },
    };
    registrations.set(key, registered);
    emit({ type: "registered", registration });
    return registered;
  }

  function resolver(service: string): Resolver {
    if (closing.signal.aborted) {
      throw new ConnectError("etcd registry is closed", Code.FailedPrecondition);
    }
    assertEtcdSegment("service", service);
    const r = createEtcdResolver({
      client,
      clock,
      prefix: opts.prefix,
      service,
      progressIntervalMs: opts.progressIntervalMs,
      backoff,
      closing: closing.signal,
    });
    const tracked: Resolver = {
      start: (listener) => r.start(listener),
      resolveNow: () => r.resolveNow?.(),
      close: async () => {
        resolvers.delete(tracked);
        await r.close();
      },
    };
    resolvers.add(tracked);
    return tracked;
  }

  let closed: Promise<void> | undefined;
  return {
    name: "etcd",
    endpoints: client.endpoints,
    register,
    resolver,
    close() {
      closed ??= (async () => {
        await Promise.all([...registrations.values()].map((r) => r.deregister()));
        await Promise.all([...resolvers].map((r) => r.close()));
        closing.abort();
        if (ownsClient) {
          client.close();
        }
      })();
      return closed;
    },
  };
}

// etcdRegistrationError names the etcd endpoints and the record in a failed
// first registration, keeping the code and the cause: "connection refused"
// alone does not say which etcd a server was pointed at.
function etcdRegistrationError(client: EtcdClient, key: string, e: unknown): ConnectError {
  const cause = ConnectError.from(e);
  return new ConnectError(
    `etcd registration of ${JSON.stringify(key)} failed (etcd endpoints ${client.endpoints.join(", ")}): ${cause.rawMessage}`,
    cause.code,
    undefined,
    undefined,
    e,
  );
}

function validateEtcdRegistryOptions(opts: {
  prefix: unknown;
  leaseTtlMs: number;
  progressIntervalMs: number;
}): void {
  if (typeof opts.prefix !== "string" || opts.prefix === "" || opts.prefix.endsWith("/")) {
    throw new RangeError(
      `prefix ${JSON.stringify(opts.prefix)} must be a non-empty string not ending in "/"`,
    );
  }
  if (!(opts.leaseTtlMs >= ETCD_MIN_LEASE_TTL_MS) || !Number.isFinite(opts.leaseTtlMs)) {
    throw new RangeError(
      `leaseTtlMs ${opts.leaseTtlMs} must be a finite number >= ${ETCD_MIN_LEASE_TTL_MS}`,
    );
  }
  if (!(opts.progressIntervalMs >= 10) || !Number.isFinite(opts.progressIntervalMs)) {
    throw new RangeError(
      `progressIntervalMs ${opts.progressIntervalMs} must be a finite number >= 10`,
    );
  }
}
