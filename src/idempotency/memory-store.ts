import { type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { createByteSlab, type SlabChunk, type SlabRef } from "./byte-slab.js";
import { tokenFingerprint } from "./claim-token.js";
import { type HeaderList, type IdempotencyOutcome, outcomeSize } from "./outcome.js";
import {
  type ClaimResult,
  type IdempotencyRecord,
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

// A completed record is one object (the record itself is built on a hit): at
// 10k records each living a second or more, what a record holds is promoted
// to the old generation and dies there, so its size is GC work and peak RSS
// (~45 MB at 10k records of ~450 B, before). An ok outcome's message lives in
// a ByteSlab (a few large chunks) rather than in an ArrayBuffer of its own,
// after the request fingerprint's 32 bytes (when it is SHA-256 hex, as the
// interceptor's are), and the record is its own slab reference; expiry is in
// ms since the store was made, a small integer rather than a boxed double.
// Other outcomes, and messages too large for a chunk, are kept as they are.
// (Keeping an ok outcome's message as a latin1 string instead was tried:
// 0.5 µs per call less at 128 B, but nearly twice the cost at 4 KiB.)
class Done implements SlabRef {
  /** chunk, offset and length locate a slabbed outcome (moved by compaction). */
  chunk: SlabChunk | undefined = undefined;
  offset = 0;
  length = 0;
  constructor(
    readonly expiresAt: number,
    readonly bytes: number,
    /** fingerprint unless it is in the slab. */
    readonly fingerprint: string | undefined,
    /** outcome unless it is in the slab. */
    readonly outcome: IdempotencyOutcome | undefined,
    /** header and trailer of a slabbed outcome, when not both empty. */
    readonly lists: readonly [HeaderList, HeaderList] | undefined,
  ) {}
}

const FINGERPRINT_BYTES = 32;
const SHA256_HEX = /^[0-9a-f]{64}$/;

// Chunks of 1/16 of maxBytes, 4-256 KiB: a small store does not hold a large
// chunk, and a message of up to a quarter chunk (64 KiB by default) is slabbed.
const slabChunkBytes = (maxBytes: number) =>
  Math.min(256 * 1024, Math.max(4 * 1024, Math.floor(maxBytes / 16)));

const NO_HEADERS: HeaderList = Object.freeze([]);
const EMPTY_OK: IdempotencyOutcome = Object.freeze({
  kind: "ok",
  message: new Uint8Array(0),
  header: NO_HEADERS,
  trailer: NO_HEADERS,
});

/**
 * createMemoryIdempotencyStore keeps records in this process: right for one
 * replica, or for tests. Replicas do not see each other's records; use the
 * Redis store (or your own) when a retry may reach another replica.
 *
 * Completed records live in an LRU (a Map in recency order: a hit moves the
 * record to the end, eviction takes from the front) bounded by `maxEntries`
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
  const done = new Map<string, Done>();
  let bytes = 0;
  let evicted = 0;
  let slab = createByteSlab(slabChunkBytes(maxBytes));

  // Completed records expire on this timeline: ms since the store was made.
  const base = clock.now();
  const sinceBase = () => clock.now() - base;

  const dropDone = (key: string, d: Done) => {
    done.delete(key);
    bytes -= d.bytes;
    if (d.chunk !== undefined) slab.free(d);
  };
  const recordOf = (d: Done): IdempotencyRecord => {
    if (d.chunk === undefined) {
      return { fingerprint: d.fingerprint ?? "", outcome: d.outcome ?? EMPTY_OK };
    }
    // A copy of the slab's bytes (a replay): the slab reuses emptied chunks.
    const all = slab.read(d);
    const inSlab = d.fingerprint === undefined;
    const lists = d.lists;
    return {
      fingerprint: inSlab
        ? d.chunk.node.toString("hex", d.offset, d.offset + FINGERPRINT_BYTES)
        : (d.fingerprint ?? ""),
      outcome: {
        kind: "ok",
        message: inSlab ? all.subarray(FINGERPRINT_BYTES) : all,
        header: lists?.[0] ?? NO_HEADERS,
        trailer: lists?.[1] ?? NO_HEADERS,
      },
    };
  };
  // compact moves every slabbed record to a fresh slab, when records that
  // outlived their neighbours (replays keep them) pin mostly empty chunks.
  const compact = () => {
    const fresh = createByteSlab(slab.chunkBytes);
    for (const d of done.values()) {
      if (d.chunk === undefined) continue;
      fresh.put(d.chunk.buf.subarray(d.offset, d.offset + d.length), d);
    }
    slab = fresh;
  };
  const newDone = (
    fingerprint: string,
    outcome: IdempotencyOutcome,
    expiresAt: number,
    size: number,
  ): Done => {
    if (outcome.kind !== "ok") return new Done(expiresAt, size, fingerprint, outcome, undefined);
    const fpInSlab = SHA256_HEX.test(fingerprint);
    const length = outcome.message.byteLength + (fpInSlab ? FINGERPRINT_BYTES : 0);
    if (!slab.fits(length)) return new Done(expiresAt, size, fingerprint, outcome, undefined);
    const { header, trailer } = outcome;
    const lists =
      header.length === 0 && trailer.length === 0 ? undefined : ([header, trailer] as const);
    const d = new Done(expiresAt, size, fpInSlab ? undefined : fingerprint, undefined, lists);
    if (slab.wasteful()) compact();
    slab.put(outcome.message, d, fpInSlab ? fingerprint : "");
    return d;
  };
  // lookup returns the live state of a key, dropping expired records on the way.
  const lookup = (key: string, touch: boolean): StoredState | undefined => {
    const now = clock.now();
    const d = done.get(key);
    if (d !== undefined) {
      if (d.expiresAt <= now - base) {
        dropDone(key, d);
      } else {
        if (touch) {
          done.delete(key);
          done.set(key, d);
        }
        return { state: "completed", record: recordOf(d) };
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
  // The eviction cursor is one long-lived iterator: every entry it passed was
  // evicted, and entries are only ever appended, so its next entry is the
  // oldest. A fresh `done.entries()` per eviction would walk over the holes
  // the evictions left at the front of the Map (thousands, until V8 rehashes
  // it): that was ~4% of a keyed call's CPU.
  let cursor: MapIterator<[string, Done]> | undefined;
  const evictOldest = (): boolean => {
    cursor ??= done.entries();
    const first = cursor.next();
    if (first.done === true) {
      // Exhausted for good (a Map iterator never resumes): the Map is empty.
      cursor = undefined;
      return false;
    }
    const d = first.value[1];
    if (d.expiresAt > sinceBase()) evicted++;
    dropDone(first.value[0], d);
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
      const d = done.get(recordKey);
      if (d !== undefined && d.expiresAt > sinceBase()) return false;
      pending.delete(recordKey);
      if (d !== undefined) dropDone(recordKey, d);
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
      done.set(recordKey, newDone(fingerprint, outcome, Math.ceil(sinceBase() + ttlMs), size));
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
