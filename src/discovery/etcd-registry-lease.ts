import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { LeaseKeepAliveRequestSchema } from "../../gen/etcd/etcdserverpb/rpc_pb.js";
import { backgroundSleep } from "../call/signals.js";
import { BACKGROUND, type Clock } from "../clock.js";
import { createRequestQueue, type EtcdClient } from "./etcd-client.js";
import { utf8 } from "./etcd-registry-record.js";
import type { Registration, RegistryEvent } from "./registry.js";

/** EtcdLeaseContext is what the lease keeper shares with its registry. */
export interface EtcdLeaseContext {
  readonly client: EtcdClient;
  readonly clock: Clock;
  /** ttlMs is the lease TTL in whole seconds, as milliseconds. */
  readonly ttlMs: number;
  readonly backoff: { delayMs(attempt: number): number };
  readonly emit: (event: RegistryEvent) => void;
}

/** EtcdRecord is one registration's record: where it lives and what it says. */
export interface EtcdRecord {
  readonly registration: Registration;
  readonly key: string;
  readonly value: string;
}

type KeepAliveOutcome =
  | { readonly lost: true; readonly error?: unknown }
  | { readonly lost: false; readonly error: unknown };

/**
 * grantEtcdLease grants a lease and puts the record on it; a failed put
 * revokes the lease again so that nothing is left behind.
 */
export async function grantEtcdLease(
  ctx: EtcdLeaseContext,
  record: EtcdRecord,
  signal: AbortSignal,
): Promise<bigint> {
  const { client } = ctx;
  const grant = await client.lease.leaseGrant(
    { TTL: BigInt(Math.round(ctx.ttlMs / 1000)) },
    { signal },
  );
  if (grant.error !== "") {
    throw new ConnectError(`etcd lease grant failed: ${grant.error}`, Code.Unavailable);
  }
  try {
    await client.kv.put(
      { key: utf8.encode(record.key), value: utf8.encode(record.value), lease: grant.ID },
      { signal },
    );
  } catch (e) {
    revokeEtcdLeaseQuietly(ctx.client, grant.ID);
    throw e;
  }
  return grant.ID;
}

/** revokeEtcdLeaseQuietly revokes a lease, best effort: it expires on its own anyway. */
export function revokeEtcdLeaseQuietly(client: EtcdClient, id: bigint): void {
  client.lease.leaseRevoke({ ID: id }).catch(() => {});
}

// keepAlive renews one lease until it is lost, the stream breaks, or the
// signal aborts. It never throws.
async function keepAlive(
  ctx: EtcdLeaseContext,
  leaseId: bigint,
  lastConfirmedAt: { at: number },
  signal: AbortSignal,
): Promise<KeepAliveOutcome> {
  const { client, clock, ttlMs } = ctx;
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

/**
 * maintainEtcdLease keeps a registration alive until the signal aborts and
 * resolves with the lease held at that moment (undefined if none).
 *
 * Keepalives go every TTL / 3 over a LeaseKeepAlive stream. A lease is lost
 * when a keepalive answers TTL <= 0 (expired or revoked, as etcd does to every
 * lease that expired while it was paused) or none succeeds within the TTL; a
 * lost lease is re-granted and the record put again at once, then with
 * backoff (minus the time the failed attempt took), reporting `lease-lost`
 * and `re-registered`. A broken stream is not
 * a lost lease: it is reopened on the same lease, waiting at most
 * `retryBackoff.maxMs` and never past the lease's expiry, so that a restarted
 * etcd (which keeps leases) sees the registrar back within about a second.
 */
export async function maintainEtcdLease(
  ctx: EtcdLeaseContext,
  record: EtcdRecord,
  initialLease: bigint,
  signal: AbortSignal,
): Promise<bigint | undefined> {
  const { clock, ttlMs, emit } = ctx;
  const { registration } = record;
  let leaseId: bigint | undefined = initialLease;
  const confirmed = { at: clock.now() };
  let failures = 0;
  while (!signal.aborted) {
    if (leaseId === undefined) {
      const startedAt = clock.now();
      try {
        leaseId = await grantEtcdLease(ctx, record, signal);
        confirmed.at = clock.now();
        failures = 0;
        emit({ type: "re-registered", registration });
      } catch (e) {
        if (signal.aborted) {
          break;
        }
        emit({ type: "error", error: e });
        // The failed attempt's own time counts toward the backoff: a grant
        // that hung until its deadline on a paused etcd is retried at once,
        // so the next one is already queued when etcd resumes.
        const waitMs = ctx.backoff.delayMs(++failures) - (clock.now() - startedAt);
        if (waitMs > 0) await backgroundSleep(clock, waitMs, signal);
      }
      continue;
    }
    const confirmedBefore = confirmed.at;
    const outcome = await keepAlive(ctx, leaseId, confirmed, signal);
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
      revokeEtcdLeaseQuietly(ctx.client, leaseId);
      leaseId = undefined;
      continue;
    }
    emit({ type: "error", error: outcome.error });
    // Reopen on the same lease: a broken stream is not a lost lease.
    const waitMs = Math.min(
      ctx.backoff.delayMs(++failures),
      Math.max(0, confirmed.at + ttlMs - clock.now()),
    );
    await backgroundSleep(clock, waitMs, signal);
  }
  return leaseId;
}
