import type { IdempotencyOutcome } from "./outcome.js";

/** IdempotencyRecord is a completed call: its request fingerprint and outcome. */
export interface IdempotencyRecord {
  readonly fingerprint: string;
  readonly outcome: IdempotencyOutcome;
}

/**
 * ClaimResult is the answer to a claim:
 * - `claimed`: the caller owns the key now and must run the call, then
 *   `complete` or `release` with `token`; a transactional store also gives
 *   the `transaction` the handler must write through (see
 *   idempotencyTransactionKey);
 * - `in-progress`: another call owns it, for `leaseRemainingMs` more at most
 *   (unless renewed); `fingerprint` is the owner's request fingerprint, or
 *   undefined when the store cannot see it before the owner commits (the
 *   Postgres store): a reused key is then detected once the owner completes;
 * - `completed`: the call ran before; replay `record`.
 */
export type ClaimResult =
  | { readonly state: "claimed"; readonly token: string; readonly transaction?: unknown }
  | {
      readonly state: "in-progress";
      readonly fingerprint: string | undefined;
      readonly leaseRemainingMs: number;
    }
  | { readonly state: "completed"; readonly record: IdempotencyRecord };

/** StoredState is what `get` finds under a record key. */
export type StoredState = Exclude<ClaimResult, { readonly state: "claimed" }>;

/**
 * IdempotencyStore keeps idempotency records. The mesh ships a memory store
 * (one process) and a Redis store (shared by replicas); implement this
 * interface for Postgres, DynamoDB or anything else with an atomic
 * "insert if absent" and expiry. Every method rejects when the store cannot
 * answer; the interceptor then fails closed (UNAVAILABLE) unless `failOpen`.
 *
 * Contract:
 * - `claim` is atomic: of any number of concurrent claims of an absent key,
 *   exactly one gets `claimed`. An in-progress record expires `leaseMs` after
 *   its claim (its owner died or overran); it is then absent and claimable.
 * - `complete` stores `outcome` with the claim's fingerprint for `ttlMs` and
 *   resolves true, if `token` still owns the key, or if the key is absent (the
 *   lease ran out but nobody else claimed it: the outcome is still the truth).
 *   It resolves false and changes nothing when another claim owns the key or a
 *   record is completed.
 * - `release` deletes the in-progress record if `token` owns it (true), else
 *   does nothing (false).
 * - `renew` (optional) extends a live in-progress claim owned by `token` to
 *   `leaseMs` from now (true), else changes nothing (false: the lease ran out
 *   or another claim owns the key). With it the interceptor holds short
 *   leases renewed while the handler runs (heartbeat), so a dead owner's key
 *   is taken over within about one lease; without it a lease lasts the
 *   call's whole deadline.
 * - `sameProcess` stores keep their records in this process: there is no
 *   other owner's death to detect, and claims hold the deadline-based lease.
 * - `transactional` stores commit the handler's own writes with the outcome
 *   in `complete`; `release` rolls them back. A `complete` that fails or
 *   resolves false then means the handler's effects are gone, and the
 *   interceptor fails the call (ABORTED) instead of answering it.
 * - Record keys are opaque strings from `formatRecordKey`; they may be long
 *   (principals are unbounded): hash them if the backend limits key size.
 * - Tokens are opaque strings chosen by the store.
 */
export interface IdempotencyStore {
  claim(recordKey: string, fingerprint: string, leaseMs: number): Promise<ClaimResult>;
  complete(
    recordKey: string,
    token: string,
    outcome: IdempotencyOutcome,
    ttlMs: number,
  ): Promise<boolean>;
  release(recordKey: string, token: string): Promise<boolean>;
  renew?(recordKey: string, token: string, leaseMs: number): Promise<boolean>;
  readonly transactional?: boolean;
  /**
   * sameProcess says the records live in this process (the memory store): a
   * claim's owner cannot die while its store lives on, so the interceptor
   * holds the deadline-based lease and runs no heartbeat, even if the store
   * can `renew`.
   */
  readonly sameProcess?: boolean;
  get(recordKey: string): Promise<StoredState | undefined>;
}

/**
 * SyncIdempotencyStore is the synchronous face of a store whose records live
 * in this process (the memory store), under the key `syncStoreKey`: the same
 * operations and contract as IdempotencyStore's, answered at once, throwing
 * IdempotencyStoreError instead of rejecting. The interceptor then handles a
 * keyed call without a promise per store operation (each one runs the call
 * scope's async hooks).
 * @private
 */
export interface SyncIdempotencyStore {
  claim(recordKey: string, fingerprint: string, leaseMs: number): ClaimResult;
  complete(recordKey: string, token: string, outcome: IdempotencyOutcome, ttlMs: number): boolean;
  release(recordKey: string, token: string): boolean;
  /** promised is the store's own promise-returning operations, which these answer for. */
  readonly promised: Pick<IdempotencyStore, "claim" | "complete" | "release">;
}

/** syncStoreKey is the property of a store holding its SyncIdempotencyStore. @private */
export const syncStoreKey: unique symbol = Symbol("connect-mesh synchronous idempotency store");

/**
 * syncStoreOf returns the synchronous face of `store`: only when it has one,
 * is not transactional, and its operations are still the ones the face
 * answers for. A wrapper that replaces any of them (to log, count or fail
 * calls: `{ ...memoryStore, claim }`) gets its own operations called.
 * @private
 */
export function syncStoreOf(store: IdempotencyStore): SyncIdempotencyStore | undefined {
  if (store.transactional === true) return undefined;
  const face = (store as { [syncStoreKey]?: SyncIdempotencyStore })[syncStoreKey];
  if (face === undefined) return undefined;
  const { promised } = face;
  return store.claim === promised.claim &&
    store.complete === promised.complete &&
    store.release === promised.release
    ? face
    : undefined;
}

/** IdempotencyStoreError is a store that could not answer (unreachable, full, corrupt data). */
export class IdempotencyStoreError extends Error {
  override readonly name = "IdempotencyStoreError";
}

/**
 * formatRecordKey names the record of one (principal, method, key) triple.
 * JSON keeps the three parts apart whatever characters they hold.
 */
export function formatRecordKey(principal: string, method: string, key: string): string {
  if (NEEDS_ESCAPE.test(key)) return JSON.stringify([principal, method, key]);
  // `["<principal>","<method>"` is the same for every key of one caller and
  // method: made once, the key appended (a third of JSON.stringify's cost).
  let cached = recordKeyPrefixes.get(method);
  if (cached === undefined || cached.principal !== principal) {
    if (recordKeyPrefixes.size >= MAX_CACHED_PREFIXES) recordKeyPrefixes.clear();
    cached = { principal, prefix: JSON.stringify([principal, method]).slice(0, -1) };
    recordKeyPrefixes.set(method, cached);
  }
  return `${cached.prefix},"${key}"]`;
}

// What JSON.stringify escapes in a string (quote, backslash, controls, lone
// surrogates; paired ones are taken the slow way too): a key with none of
// them is written as it is.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the controls JSON.stringify escapes
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
// The last principal's prefix per method; bounded, since any caller of this
// exported function may pass any method name.
const MAX_CACHED_PREFIXES = 1024;
const recordKeyPrefixes = new Map<string, { principal: string; prefix: string }>();
