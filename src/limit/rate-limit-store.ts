import type { TokenBucketLimit } from "./token-bucket.js";

/** RateLimitVerdict is a store's answer for one call. */
export interface RateLimitVerdict {
  /** allowed is true when the call took its token. */
  readonly allowed: boolean;
  /** retryAfterMs is 0 when allowed, else the time until a token is there. */
  readonly retryAfterMs: number;
}

/**
 * RateLimitStore keeps token buckets by key. The in-memory store answers
 * synchronously (no promise on the hot path); a shared store (Redis) answers
 * with a promise and rejects with RateLimitStoreError when it cannot decide.
 */
export interface RateLimitStore {
  /** take refills the bucket `key` shaped by `limit` and takes `cost` tokens if it holds them. */
  take(
    key: string,
    limit: TokenBucketLimit,
    cost: number,
  ): RateLimitVerdict | Promise<RateLimitVerdict>;
  /** close releases what the store owns (a connection it opened); optional. */
  close?(): Promise<void>;
}

/** RateLimitStoreError says a shared store could not decide (unreachable, timed out, bad reply). */
export class RateLimitStoreError extends Error {
  override readonly name = "RateLimitStoreError";
}
