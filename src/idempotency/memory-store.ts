import { type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { tokenFingerprint } from "./claim-token.js";
import { type IdempotencyOutcome, outcomeSize } from "./outcome.js";
import { createRecordTable } from "./record-table.js";
import {
  type ClaimResult,
  type IdempotencyStore,
  IdempotencyStoreError,
  type StoredState,
  type SyncIdempotencyStore,
  syncStoreKey,
} from "./store.js";

/**
 * MemoryIdempotencyStoreOptions configures createMemoryIdempotencyStore.
 * Defaults (MEMORY_STORE_DEFAULTS): maxEntries 10_000, maxBytes 16 MiB.
 *
 * The store keeps the most recent outcomes that fit, so how long a retry can
 * still be replayed is about maxBytes / (outcome bytes × keyed calls per
 * second): 16 MiB keeps ~4 s of 4 KiB outcomes at 1,000 keyed calls/s, ~13
 * min of 128 B outcomes at 10/s (then maxEntries binds). `stats().evicted`
 * counts records dropped for room before their TTL: when it grows, raise
 * maxBytes or use a shared store (Redis, Postgres).
 */
export interface MemoryIdempotencyStoreOptions {
  /** maxEntries bounds completed plus in-progress records; >= 1. */
  readonly maxEntries?: number;
  /** maxBytes bounds the stored outcomes' size (outcomeSize plus key length); >= 1. */
  readonly maxBytes?: number;
  /** clock drives leases and TTLs; inject a fake one in tests. */
  readonly clock?: Clock;
}

/** MEMORY_STORE_DEFAULTS are the defaults documented on MemoryIdempotencyStoreOptions. */
export const MEMORY_STORE_DEFAULTS = Object.freeze({
  // 10k records of ~1 KiB answer a busy replica's retries for minutes. 16 MiB
  // of outcomes bounds what a keyed server holds beyond a plain gRPC server
  // (64 MiB held ~50 MB more at 4 KiB outcomes; bench/results/paced.md).
  maxEntries: 10_000,
  maxBytes: 16 * 1024 * 1024,
});

/** MemoryStoreStats is a snapshot of a memory store's occupancy. */
export interface MemoryStoreStats {
  readonly completed: number;
  readonly inProgress: number;
  readonly bytes: number;
  /** evicted counts completed records dropped for room before their TTL, since creation. */
  readonly evicted: number;
}

/** MemoryIdempotencyStore is an IdempotencyStore in this process's memory. */
export interface MemoryIdempotencyStore extends IdempotencyStore {
  /** stats returns the current occupancy (expired records may still be counted until touched). */
  stats(): MemoryStoreStats;
}

// Claim tokens never leave this process: a sequence number tells claims
// apart as well as a random UUID does, at a fraction of the cost. The
// fingerprint after the slash is what tokenFingerprint reads.
let tokenSeq = 0;
const newLocalToken = (fingerprint: string) => `m${(++tokenSeq).toString(36)}/${fingerprint}`;

interface Pending {
  readonly token: string;
  readonly fingerprint: string;
  readonly expiresAt: number;
}

// Completed records live in a RecordTable: typed arrays and a byte slab, off
// the V8 heap (see record-table.ts for what that saved). Their expiry is in
// ms since the store was made.

// Chunks of 1/16 of maxBytes, 4-256 KiB: a small store does not hold a large
// chunk, and a record of up to a quarter chunk (64 KiB by default) is slabbed.
const slabChunkBytes = (maxBytes: number) =>
  Math.min(256 * 1024, Math.max(4 * 1024, Math.floor(maxBytes / 16)));

/**
 * createMemoryIdempotencyStore keeps records in this process: right for one
 * replica, or for tests. Replicas do not see each other's records; use the
 * Redis store (or your own) when a retry may reach another replica.
 *
 * Completed records live in an LRU (a hit makes a record the most recent,
 * eviction takes the least recent), off the V8 heap, bounded by `maxEntries`
 * and `maxBytes`, and expire after their TTL. In-progress records are never
 * evicted, since that would let a duplicate run; they expire with their lease.
 * When in-progress records alone fill `maxEntries`, claims fail with
 * IdempotencyStoreError (the interceptor answers UNAVAILABLE).
 */
export function createMemoryIdempotencyStore(
  options: MemoryIdempotencyStoreOptions = {},
): MemoryIdempotencyStore {
  const { maxEntries, maxBytes, clock } = {
    ...MEMORY_STORE_DEFAULTS,
    clock: systemClock,
    ...stripUndefined(options),
  };
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`maxEntries ${maxEntries} must be an integer >= 1`);
  }
  if (!(maxBytes >= 1)) {
    throw new RangeError(`maxBytes ${maxBytes} must be >= 1`);
  }
  const pending = new Map<string, Pending>();
  const done = createRecordTable(maxEntries, slabChunkBytes(maxBytes));
  let bytes = 0;
  let evicted = 0;

  // Completed records expire on this timeline: ms since the store was made.
  const base = clock.now();
  const sinceBase = () => clock.now() - base;

  const dropDone = (slot: number) => {
    bytes -= done.bytes(slot);
    done.remove(slot);
  };
  // lookup returns the live state of a key, dropping expired records on the way.
  const lookup = (key: string, touch: boolean): StoredState | undefined => {
    const now = clock.now();
    const slot = done.find(key);
    if (slot >= 0) {
      if (done.expiresAt(slot) <= now - base) {
        dropDone(slot);
      } else {
        if (touch) done.touch(slot);
        return { state: "completed", record: done.record(slot) };
      }
    }
    const p = pending.get(key);
    if (p !== undefined) {
      if (p.expiresAt <= now) {
        pending.delete(key);
      } else {
        return {
          state: "in-progress",
          fingerprint: p.fingerprint,
          leaseRemainingMs: p.expiresAt - now,
        };
      }
    }
    return undefined;
  };
  const evictOldest = (): boolean => {
    const slot = done.oldest();
    if (slot < 0) return false;
    if (done.expiresAt(slot) > sinceBase()) evicted++;
    dropDone(slot);
    return true;
  };
  const sweepPending = () => {
    const now = clock.now();
    for (const [k, p] of pending) {
      if (p.expiresAt <= now) pending.delete(k);
    }
  };

  const sync: Omit<SyncIdempotencyStore, "promised"> = {
    claim(recordKey, fingerprint, leaseMs): ClaimResult {
      const found = lookup(recordKey, true);
      if (found !== undefined) return found;
      while (pending.size + done.size >= maxEntries && evictOldest()) {}
      if (pending.size >= maxEntries) {
        sweepPending();
        if (pending.size >= maxEntries) {
          throw new IdempotencyStoreError(
            `memory idempotency store is full: ${pending.size} calls in progress, maxEntries ${maxEntries}`,
          );
        }
      }
      const token = newLocalToken(fingerprint);
      pending.set(recordKey, { token, fingerprint, expiresAt: clock.now() + leaseMs });
      return { state: "claimed", token };
    },
    complete(recordKey, token, outcome: IdempotencyOutcome, ttlMs): boolean {
      const p = pending.get(recordKey);
      const fingerprint = p?.token === token ? p.fingerprint : tokenFingerprint(token);
      if (fingerprint === undefined) return false;
      if (p !== undefined && p.token !== token && p.expiresAt > clock.now()) return false;
      const d = done.find(recordKey);
      if (d >= 0 && done.expiresAt(d) > sinceBase()) return false;
      pending.delete(recordKey);
      if (d >= 0) dropDone(d);
      const size = outcomeSize(outcome) + recordKey.length;
      if (size > maxBytes) {
        throw new IdempotencyStoreError(
          `record of ${size} bytes exceeds the memory store's maxBytes ${maxBytes}`,
        );
      }
      while (
        (bytes + size > maxBytes || pending.size + done.size >= maxEntries) &&
        evictOldest()
      ) {}
      // Rounded up to a whole ms: a fractional clock (performance.now) would
      // make every record's expiry a boxed double, one more object per record.
      done.insert(recordKey, fingerprint, outcome, Math.ceil(sinceBase() + ttlMs), size);
      bytes += size;
      return true;
    },
    release(recordKey, token): boolean {
      const p = pending.get(recordKey);
      if (p === undefined || p.token !== token) return false;
      pending.delete(recordKey);
      return true;
    },
  };

  const store: MemoryIdempotencyStore = {
    // The promise-returning faces: errors become rejections, as the
    // IdempotencyStore contract says.
    async claim(recordKey, fingerprint, leaseMs): Promise<ClaimResult> {
      return sync.claim(recordKey, fingerprint, leaseMs);
    },
    async complete(recordKey, token, outcome: IdempotencyOutcome, ttlMs) {
      return sync.complete(recordKey, token, outcome, ttlMs);
    },
    async release(recordKey, token) {
      return sync.release(recordKey, token);
    },
    async renew(recordKey, token, leaseMs) {
      const p = pending.get(recordKey);
      if (p === undefined || p.token !== token || p.expiresAt <= clock.now()) return false;
      pending.set(recordKey, { ...p, expiresAt: clock.now() + leaseMs });
      return true;
    },
    async get(recordKey) {
      return lookup(recordKey, false);
    },
    stats: () => ({ completed: done.size, inProgress: pending.size, bytes, evicted }),
    // A heartbeat would renew a lease its owner cannot outlive: the lease
    // follows the call's deadline instead, with no timer per call.
    sameProcess: true,
  };
  // The synchronous face (syncStoreOf), not enumerable: a copy made by
  // spreading the store is a wrapper and answers through its own methods.
  const promised = { claim: store.claim, complete: store.complete, release: store.release };
  const face: SyncIdempotencyStore = { ...sync, promised };
  Object.defineProperty(store, syncStoreKey, { value: face });
  return store;
}
