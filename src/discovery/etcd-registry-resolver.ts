import type { MessageInitShape } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { WatchRequestSchema } from "../../gen/etcd/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../gen/etcd/mvccpb/kv_pb.js";
import { backgroundSleep } from "../call/signals.js";
import { BACKGROUND, type Clock } from "../clock.js";
import { createEndpoint, createEndpointSet, type Endpoint, type EndpointSet } from "./endpoint.js";
import { createRequestQueue, type EtcdClient, prefixRangeEnd } from "./etcd-client.js";
import { parseEtcdRecordKey, utf8 } from "./etcd-registry-record.js";
import { parseRegistrationRecord } from "./registry.js";
import type { Resolver, ResolverEvent, ResolverListener } from "./resolver.js";

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

/** EtcdResolverContext is what a resolver shares with its registry. */
export interface EtcdResolverContext {
  readonly client: EtcdClient;
  readonly clock: Clock;
  readonly prefix: string;
  readonly service: string;
  readonly progressIntervalMs: number;
  readonly backoff: { delayMs(attempt: number): number };
  readonly closing: AbortSignal;
}

interface Entry {
  readonly value: string;
  readonly endpoint: Endpoint;
}

/**
 * createEtcdResolver lists `<prefix>/<service>/`, pushes a snapshot, and
 * watches from the next revision, pushing one new snapshot per change batch.
 * It re-lists after compaction, cancellation, a stream error, or a silent
 * watch. While etcd is unreachable it keeps the last-known endpoints
 * (stale-on-outage: the same endpoints with `staleSince`, and a `stale`
 * event); endpoints leave only on explicit deletes (including lease expiry)
 * or an authoritative re-list. Bad records are skipped with a `bad-record`
 * event. Errors are reported as ConnectErrors naming the target and the etcd
 * endpoints, with the original error as cause.
 */
export function createEtcdResolver(ctx: EtcdResolverContext): Resolver {
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
    const id = parseEtcdRecordKey(base, k);
    if (typeof id === "string") {
      event({ type: "bad-record", target, record: k, reason: id });
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

  // etcdUnreachable names what a user must check: the target and the etcd
  // endpoints tried (the default 127.0.0.1:2379 is easy to get by accident).
  // An unreachable etcd is an expected condition, not a bug: its stack
  // frames (~1.2 KB of connect-node internals per retry) say nothing, so the
  // error and its cause carry one line each; the original error stays
  // reachable as `original`.
  function etcdUnreachable(e: unknown): ConnectError {
    const cause = ConnectError.from(e);
    const summary = new Error(cause.message);
    summary.stack = `${cause.name}: ${cause.message}`;
    Object.defineProperty(summary, "original", { value: e, enumerable: false });
    const error = new ConnectError(
      `${target}: etcd at ${client.endpoints.join(", ")} did not answer: ${cause.rawMessage}`,
      cause.code,
      undefined,
      undefined,
      summary,
    );
    error.stack = `${error.name}: ${error.message}`;
    return error;
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
    let lastListError: string | undefined;
    while (!signal.aborted) {
      try {
        await list();
      } catch (e) {
        if (signal.aborted) {
          break;
        }
        const error = etcdUnreachable(e);
        // Report an outage once, and again only when its cause changes.
        if (error.message !== lastListError) {
          lastListError = error.message;
          event({ type: "error", target, error });
        }
        markStale();
        await backgroundSleep(clock, ctx.backoff.delayMs(++failures), signal, wake.signal);
        wake = new AbortController();
        continue;
      }
      lastListError = undefined;
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
        await backgroundSleep(clock, ctx.backoff.delayMs(failures), signal, wake.signal);
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
