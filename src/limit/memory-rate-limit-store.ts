import { type Clock, systemClock } from "../clock.js";
import type { RateLimitStore, RateLimitVerdict } from "./rate-limit-store.js";
import { type TokenBucketState, takeToken } from "./token-bucket.js";

/** MemoryRateLimitStoreOptions configures createMemoryRateLimitStore. */
export interface MemoryRateLimitStoreOptions {
  /**
   * maxKeys bounds how many buckets are kept (one per method, or per method
   * and principal); past it the least recently used bucket is dropped. A
   * dropped bucket comes back full, which is what an idle bucket would be
   * anyway; only a caller among more than maxKeys active ones gains a burst.
   * Default 10_000 (about 1.5 MB).
   */
  readonly maxKeys?: number;
  /** clock times the refills; default the system clock. */
  readonly clock?: Clock;
}

/** MemoryRateLimitStore is a RateLimitStore in this process's memory. */
export interface MemoryRateLimitStore extends RateLimitStore {
  take(key: string, limit: Parameters<RateLimitStore["take"]>[1], cost: number): RateLimitVerdict;
  /** size is the number of buckets held now. */
  readonly size: number;
}

/** MEMORY_RATE_LIMIT_STORE_DEFAULTS are the defaults of MemoryRateLimitStoreOptions. */
export const MEMORY_RATE_LIMIT_STORE_DEFAULTS = Object.freeze({ maxKeys: 10_000 });

/**
 * createMemoryRateLimitStore keeps token buckets in a Map in least recently
 * used order (a Map iterates in insertion order: a touched key is re-inserted
 * at the end, the first key is the eviction victim), so memory stays bounded
 * however many principals call.
 */
export function createMemoryRateLimitStore(
  options: MemoryRateLimitStoreOptions = {},
): MemoryRateLimitStore {
  const maxKeys = options.maxKeys ?? MEMORY_RATE_LIMIT_STORE_DEFAULTS.maxKeys;
  if (!(Number.isSafeInteger(maxKeys) && maxKeys >= 1)) {
    throw new RangeError(`maxKeys ${String(maxKeys)} must be an integer >= 1`);
  }
  const clock = options.clock ?? systemClock;
  const buckets = new Map<string, TokenBucketState>();
  return {
    take(key, limit, cost) {
      const previous = buckets.get(key);
      const decision = takeToken(limit, previous, clock.now(), cost);
      if (previous !== undefined) buckets.delete(key);
      buckets.set(key, decision.state);
      if (buckets.size > maxKeys) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      return { allowed: decision.allowed, retryAfterMs: decision.retryAfterMs };
    },
    get size() {
      return buckets.size;
    },
  };
}
