import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  LeaseKeepAliveRequestSchema,
  WatchRequestSchema,
} from "../../gen/etcd/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../gen/etcd/mvccpb/kv_pb.js";
import { type BackoffOptions, createBackoff } from "../call/backoff.js";
import { BACKGROUND, type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { parseAddress } from "./address.js";
import { createEndpoint, createEndpointSet, type Endpoint, type EndpointSet } from "./endpoint.js";
import {
  createEtcdClient,
  createRequestQueue,
  type EtcdClient,
  prefixRangeEnd,
} from "./etcd-client.js";
import {
  formatRegistrationRecord,
  parseRegistrationRecord,
  type Registered,
  type Registration,
  type RegistryEvent,
  type ServiceRegistry,
} from "./registry.js";
import type { Resolver, ResolverEvent, ResolverListener } from "./resolver.js";

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

/** SILENT_WATCH_INTERVALS is how many progress intervals a watch may stay silent. */
const SILENT_WATCH_INTERVALS = 3;

/**
 * EtcdWatchError says why a resolver dropped its watch and re-listed:
 * `compacted` (the watch's revision was compacted away), `canceled` (etcd
 * canceled the watch), `silent` (no response, not even to a progress
 * request, for 3 progress intervals) or `ended` (etcd closed the stream).
 */
export class EtcdWatchError extends Error {
  override name = "EtcdWatchError";
  constructor(
    message: string,
    readonly reason: "compacted" | "canceled" | "silent" | "ended",
    readonly compactRevision?: bigint,
  ) {
    super(message);
  }
}

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
 * Registering grants a lease, puts the record with it and keeps the lease
 * alive over a LeaseKeepAlive stream every TTL / 3. A lease is lost when a
 * keepalive answers TTL <= 0 (expired or revoked) or none succeeds within the
 * TTL (a broken stream is reopened on the same lease until then); the
 * registry then grants a new lease and puts the record again, reporting
 * `lease-lost` and `re-registered`.
 *
 * A resolver lists `<prefix>/<service>/`, pushes a snapshot, and watches from
 * the next revision, pushing one new snapshot per change batch. It re-lists
 * after compaction, cancellation, a stream error, or a silent watch. While
 * etcd is unreachable it keeps the last-known endpoints (stale-on-outage:
 * the same endpoints with `staleSince`, and a `stale` event); endpoints leave
 * only on explicit deletes (including lease expiry) or an authoritative
 * re-list. Bad records are skipped with a `bad-record` event.
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
  const ttlSeconds = Math.ceil(opts.leaseTtlMs / 1000);
  const ttlMs = ttlSeconds * 1000;
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

  function sleep(ms: number, signal: AbortSignal, wake?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        wake?.removeEventListener("abort", done);
        resolve();
      };
      const timer = clock.setTimeout(done, ms, BACKGROUND);
      signal.addEventListener("abort", done);
      wake?.addEventListener("abort", done);
      if (signal.aborted || wake?.aborted === true) {
        done();
      }
    });
  }

  async function grantAndPut(key: string, value: string, signal: AbortSignal): Promise<bigint> {
    const grant = await client.lease.leaseGrant({ TTL: BigInt(ttlSeconds) }, { signal });
    if (grant.error !== "") {
      throw new ConnectError(`etcd lease grant failed: ${grant.error}`, Code.Unavailable);
    }
    try {
      await client.kv.put(
        { key: utf8.encode(key), value: utf8.encode(value), lease: grant.ID },
        { signal },
      );
    } catch (e) {
      revokeQuietly(grant.ID);
      throw e;
    }
    return grant.ID;
  }

  function revokeQuietly(id: bigint): void {
    client.lease.leaseRevoke({ ID: id }).catch(() => {});
  }

  type KeepAliveOutcome =
    | { readonly lost: true; readonly error?: unknown }
    | { readonly lost: false; readonly error: unknown };

  // keepAlive renews one lease until it is lost, the stream breaks, or the
  // signal aborts. It never throws.
  async function keepAlive(
    leaseId: bigint,
    lastConfirmedAt: { at: number },
    signal: AbortSignal,
  ): Promise<KeepAliveOutcome> {
    const requests = createRequestQueue<MessageInitShape<typeof LeaseKeepAliveRequestSchema>>();
    const stream = new AbortController();
    const onAbort = () => stream.abort();
    signal.addEventListener("abort", onAbort);
    let expired = false;
    const expire = () => {
      expired = true;
      stream.abort();
    };
    let deadline = clock.setTimeout(expire, lastConfirmedAt.at + ttlMs - clock.now(), BACKGROUND);
    let ticker: unknown;
    const tick = () => {
      requests.push({ ID: leaseId });
      ticker = clock.setTimeout(tick, ttlMs / 3, BACKGROUND);
    };
    tick();
    try {
      for await (const res of client.lease.leaseKeepAlive(requests, { signal: stream.signal })) {
        if (res.TTL <= 0n) {
          return { lost: true, error: new Error(`lease ${res.ID} expired or was revoked`) };
        }
        lastConfirmedAt.at = clock.now();
        clock.clearTimeout(deadline);
        deadline = clock.setTimeout(expire, ttlMs, BACKGROUND);
      }
      return { lost: false, error: new Error("etcd closed the keepalive stream") };
    } catch (e) {
      if (expired) {
        return { lost: true, error: new Error(`lease ${leaseId} not renewed within ${ttlMs} ms`) };
      }
      return { lost: false, error: e };
    } finally {
      clock.clearTimeout(deadline);
      clock.clearTimeout(ticker);
      signal.removeEventListener("abort", onAbort);
      requests.end();
      stream.abort();
    }
  }

  // maintain keeps a registration alive until the signal aborts; it resolves
  // with the lease held at that moment.
  async function maintain(
    registration: Registration,
    key: string,
    value: string,
    initialLease: bigint,
    signal: AbortSignal,
  ): Promise<bigint | undefined> {
    let leaseId: bigint | undefined = initialLease;
    const confirmed = { at: clock.now() };
    let failures = 0;
    while (!signal.aborted) {
      if (leaseId === undefined) {
        try {
          leaseId = await grantAndPut(key, value, signal);
          confirmed.at = clock.now();
          failures = 0;
          emit({ type: "re-registered", registration });
        } catch (e) {
          if (signal.aborted) {
            break;
          }
          emit({ type: "error", error: e });
          await sleep(backoff.delayMs(++failures), signal);
        }
        continue;
      }
      const confirmedBefore = confirmed.at;
      const outcome = await keepAlive(leaseId, confirmed, signal);
      if (signal.aborted) {
        break;
      }
      if (confirmed.at > confirmedBefore) {
        failures = 0; // the stream worked for a while: start the backoff over
      }
      if (clock.now() - confirmed.at >= ttlMs && !outcome.lost) {
        // The stream kept breaking until the lease must have expired.
        emit({ type: "lease-lost", registration, error: outcome.error });
        leaseId = undefined;
        continue;
      }
      if (outcome.lost) {
        emit({ type: "lease-lost", registration, error: outcome.error });
        // Best effort: a lease that merely went unconfirmed may still hold.
        revokeQuietly(leaseId);
        leaseId = undefined;
        continue;
      }
      emit({ type: "error", error: outcome.error });
      // Reopen on the same lease: a broken stream is not a lost lease.
      const waitMs = Math.min(
        backoff.delayMs(++failures),
        Math.max(0, confirmed.at + ttlMs - clock.now()),
      );
      await sleep(waitMs, signal);
    }
    return leaseId;
  }

  async function register(registration: Registration): Promise<Registered> {
    if (closing.signal.aborted) {
      throw new ConnectError("etcd registry is closed", Code.FailedPrecondition);
    }
    validateRegistration(registration);
    const key = recordKey(opts.prefix, registration.service, registration.instanceId);
    if (registrations.has(key)) {
      throw new TypeError(`instance ${JSON.stringify(key)} is already registered`);
    }
    const value = formatRegistrationRecord(registration);
    const stop = new AbortController();
    const leaseId = await grantAndPut(key, value, AbortSignal.any([stop.signal, closing.signal]));
    const running = maintain(registration, key, value, leaseId, stop.signal);
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
    assertSegment("service", service);
    const r = createEtcdResolver({
      client,
      clock,
      prefix: opts.prefix,
      service,
      progressIntervalMs: opts.progressIntervalMs,
      backoff,
      sleep,
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

const utf8 = {
  encoder: new TextEncoder(),
  decoder: new TextDecoder(),
  encode(s: string): Uint8Array {
    return this.encoder.encode(s);
  },
  decode(b: Uint8Array): string {
    return this.decoder.decode(b);
  },
};

function recordKey(prefix: string, service: string, instanceId: string): string {
  return `${prefix}/${service}/${instanceId}`;
}

function assertSegment(what: string, value: unknown): void {
  if (typeof value !== "string" || value === "" || value.includes("/")) {
    throw new TypeError(`${what} ${JSON.stringify(value)} must be a non-empty string without "/"`);
  }
}

function validateRegistration(r: Registration): void {
  assertSegment("service", r.service);
  assertSegment("instanceId", r.instanceId);
  parseAddress(r.address);
  const parsed = parseRegistrationRecord(formatRegistrationRecord(r));
  if (typeof parsed === "string") {
    throw new TypeError(`registration ${JSON.stringify(r.instanceId)}: ${parsed}`);
  }
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

// --- resolver -----------------------------------------------------------------

interface EtcdResolverContext {
  readonly client: EtcdClient;
  readonly clock: Clock;
  readonly prefix: string;
  readonly service: string;
  readonly progressIntervalMs: number;
  readonly backoff: { delayMs(attempt: number): number };
  readonly sleep: (ms: number, signal: AbortSignal, wake?: AbortSignal) => Promise<void>;
  readonly closing: AbortSignal;
}

interface Entry {
  readonly value: string;
  readonly endpoint: Endpoint;
}

function createEtcdResolver(ctx: EtcdResolverContext): Resolver {
  const { client, clock } = ctx;
  const target = `etcd:///${ctx.service}`;
  const base = `${ctx.prefix}/${ctx.service}/`;
  const key = utf8.encode(base);
  const rangeEnd = prefixRangeEnd(key);
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, ctx.closing]);
  let entries = new Map<string, Entry>();
  let revision = 0n;
  let pushed = false;
  let staleSince: number | undefined;
  let listener: ResolverListener | undefined;
  let running: Promise<void> | undefined;
  let wake = new AbortController();

  function event(e: ResolverEvent): void {
    try {
      listener?.onEvent?.(e);
    } catch {
      // A listener's bug must not stop resolution.
    }
  }

  function push(): void {
    const keys = [...entries.keys()].sort();
    const endpoints = keys.map((k) => (entries.get(k) as Entry).endpoint);
    const now = clock.now();
    const set: EndpointSet = createEndpointSet(endpoints, now, staleSince);
    pushed = true;
    try {
      listener?.onUpdate(set);
    } catch (e) {
      event({ type: "error", target, error: e });
    }
  }

  // parse turns a stored key/value into an entry, or reports it as bad.
  function parse(k: string, value: string): Entry | undefined {
    const id = k.startsWith(base) ? k.slice(base.length) : undefined;
    if (id === undefined || id === "" || id.includes("/")) {
      event({
        type: "bad-record",
        target,
        record: k,
        reason:
          id === undefined
            ? `key is outside ${JSON.stringify(base)}`
            : `key must be ${JSON.stringify(`${base}<instanceId>`)} with one path segment`,
      });
      return undefined;
    }
    const parsed = parseRegistrationRecord(value);
    if (typeof parsed === "string") {
      event({ type: "bad-record", target, record: k, reason: parsed });
      return undefined;
    }
    return {
      value,
      endpoint: createEndpoint(parsed.address, {
        weight: parsed.weight,
        metadata: parsed.metadata,
      }),
    };
  }

  async function list(): Promise<void> {
    const res = await client.kv.range({ key, rangeEnd }, { signal });
    const next = new Map<string, Entry>();
    for (const kv of res.kvs) {
      const k = utf8.decode(kv.key);
      const entry = parse(k, utf8.decode(kv.value));
      if (entry !== undefined) {
        next.set(k, entry);
      }
    }
    entries = next;
    revision = res.header?.revision ?? 0n;
    staleSince = undefined;
    push();
  }

  // watch follows changes after `revision` until the watch must be dropped
  // (returns why) or the stream fails (throws).
  async function watch(onCreated: () => void): Promise<EtcdWatchError> {
    const requests = createRequestQueue<MessageInitShape<typeof WatchRequestSchema>>();
    const stream = new AbortController();
    const onAbort = () => stream.abort();
    signal.addEventListener("abort", onAbort);
    let lastHeardAt = clock.now();
    let silent = false;
    let timer: unknown;
    const silentAfterMs = SILENT_WATCH_INTERVALS * ctx.progressIntervalMs;
    const check = () => {
      if (clock.now() - lastHeardAt >= silentAfterMs) {
        silent = true;
        stream.abort();
        return;
      }
      requests.push({ requestUnion: { case: "progressRequest", value: {} } });
      timer = clock.setTimeout(check, ctx.progressIntervalMs, BACKGROUND);
    };
    timer = clock.setTimeout(check, ctx.progressIntervalMs, BACKGROUND);
    requests.push({
      requestUnion: {
        case: "createRequest",
        value: { key, rangeEnd, startRevision: revision + 1n, progressNotify: true },
      },
    });
    try {
      for await (const res of client.watch.watch(requests, { signal: stream.signal })) {
        lastHeardAt = clock.now();
        if (res.compactRevision > 0n) {
          return new EtcdWatchError(
            `watch from revision ${revision + 1n} was compacted (compact revision ${res.compactRevision}); re-listing`,
            "compacted",
            res.compactRevision,
          );
        }
        if (res.canceled) {
          return new EtcdWatchError(
            `etcd canceled the watch${res.cancelReason === "" ? "" : `: ${res.cancelReason}`}; re-listing`,
            "canceled",
          );
        }
        if (res.created) {
          onCreated();
        }
        if (res.events.length === 0) {
          continue; // created, or a progress response
        }
        let changed = false;
        for (const ev of res.events) {
          const kv = ev.kv;
          if (kv === undefined) {
            continue;
          }
          const k = utf8.decode(kv.key);
          if (kv.modRevision > revision) {
            revision = kv.modRevision;
          }
          if (ev.type === Event_EventType.DELETE) {
            changed = entries.delete(k) || changed;
            continue;
          }
          const value = utf8.decode(kv.value);
          if (entries.get(k)?.value === value) {
            continue;
          }
          const entry = parse(k, value);
          if (entry === undefined) {
            // The instance now publishes a bad record: it no longer
            // describes an endpoint, as a re-list would also conclude.
            changed = entries.delete(k) || changed;
          } else {
            entries.set(k, entry);
            changed = true;
          }
        }
        if (changed) {
          push();
        }
      }
      return new EtcdWatchError("etcd closed the watch stream; re-listing", "ended");
    } catch (e) {
      if (silent) {
        return new EtcdWatchError(
          `watch answered nothing for ${silentAfterMs} ms; re-listing`,
          "silent",
        );
      }
      throw e;
    } finally {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      requests.end();
      stream.abort();
    }
  }

  function markStale(): void {
    if (!pushed || staleSince !== undefined) {
      return;
    }
    staleSince = clock.now();
    push();
    event({ type: "stale", target, sinceMs: staleSince });
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        await list();
      } catch (e) {
        if (signal.aborted) {
          break;
        }
        event({ type: "error", target, error: e });
        markStale();
        await ctx.sleep(ctx.backoff.delayMs(++failures), signal, wake.signal);
        wake = new AbortController();
        continue;
      }
      try {
        const dropped = await watch(() => {
          failures = 0;
        });
        event({ type: "error", target, error: dropped });
      } catch (e) {
        if (signal.aborted) {
          break;
        }
        event({ type: "error", target, error: e });
      }
      // Re-list at once the first time; pace repeated failures.
      if (failures > 0) {
        await ctx.sleep(ctx.backoff.delayMs(failures), signal, wake.signal);
        wake = new AbortController();
      }
      failures++;
    }
  }

  return {
    start(l) {
      if (running !== undefined) {
        throw new Error(`resolver for ${target} was already started`);
      }
      listener = l;
      running = run();
    },
    resolveNow() {
      // A live watch is already current; this only cuts a retry wait short.
      wake.abort();
    },
    async close() {
      stop.abort();
      await running;
    },
  };
}
