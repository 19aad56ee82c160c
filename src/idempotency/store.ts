import type { IdempotencyOutcome } from "./outcome.js";

/** IdempotencyRecord is a completed call: its request fingerprint and outcome. */
export interface IdempotencyRecord {
  readonly fingerprint: string;
  readonly outcome: IdempotencyOutcome;
}

/**
 * ClaimResult is the answer to a claim:
 * - `claimed`: the caller owns the key now and must run the call, then
 *   `complete` or `release` with `token`;
 * - `in-progress`: another call owns it, for `leaseRemainingMs` more at most;
 * - `completed`: the call ran before; replay `record`.
 */
export type ClaimResult =
  | { readonly state: "claimed"; readonly token: string }
  | {
      readonly state: "in-progress";
      readonly fingerprint: string;
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
  get(recordKey: string): Promise<StoredState | undefined>;
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
  return JSON.stringify([principal, method, key]);
}
