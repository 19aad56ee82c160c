/**
 * TokenBucketLimit is a bucket's shape: it refills at `ratePerSecond` tokens
 * per second up to `burst` tokens, and starts full.
 */
export interface TokenBucketLimit {
  /** ratePerSecond is the sustained rate (tokens per second, > 0; fractions allowed). */
  readonly ratePerSecond: number;
  /** burst is the bucket's capacity: how many calls may pass at once after a quiet spell (>= 1). */
  readonly burst: number;
}

/** TokenBucketState is a bucket's level at a moment; immutable, replaced on every take. */
export interface TokenBucketState {
  /** tokens is the level (0..burst, fractions allowed) at `updatedAt`. */
  readonly tokens: number;
  /** updatedAt is the clock time (ms) the level was computed at. */
  readonly updatedAt: number;
}

/** TokenBucketDecision is the outcome of takeToken. */
export interface TokenBucketDecision {
  /** allowed is true when the tokens were taken. */
  readonly allowed: boolean;
  /** state is the bucket after the decision (refilled, minus the cost when allowed). */
  readonly state: TokenBucketState;
  /**
   * retryAfterMs is 0 when allowed, else the time until the bucket holds
   * `cost` tokens (rounded up to a whole ms): the `grpc-retry-pushback-ms`
   * to answer with.
   */
  readonly retryAfterMs: number;
}

// Refill arithmetic rounds: a caller who waited exactly the pushback must
// find 0.9999999999 tokens enough.
const EPSILON = 1e-9;

/**
 * takeToken is the token bucket's pure decision: refill `state` (undefined: a
 * new, full bucket) up to `now`, then take `cost` tokens (default 1) if the
 * bucket holds them. A clock that went backwards refills nothing. A cost
 * above `burst` can never pass; its retryAfterMs is the time to fill the bucket.
 */
export function takeToken(
  limit: TokenBucketLimit,
  state: TokenBucketState | undefined,
  now: number,
  cost = 1,
): TokenBucketDecision {
  const tokens = levelAt(limit, state, now);
  if (tokens + EPSILON >= cost) {
    return {
      allowed: true,
      state: { tokens: Math.max(0, tokens - cost), updatedAt: now },
      retryAfterMs: 0,
    };
  }
  const missing = Math.min(cost, limit.burst) - tokens;
  return {
    allowed: false,
    state: { tokens, updatedAt: now },
    retryAfterMs: Math.max(1, Math.ceil((missing * 1000) / limit.ratePerSecond)),
  };
}

/** levelAt is the bucket's level at `now` (a new bucket is full). */
export function levelAt(
  limit: TokenBucketLimit,
  state: TokenBucketState | undefined,
  now: number,
): number {
  if (state === undefined) return limit.burst;
  const elapsedMs = now > state.updatedAt ? now - state.updatedAt : 0;
  return Math.min(limit.burst, state.tokens + (elapsedMs * limit.ratePerSecond) / 1000);
}

/**
 * fullAfterMs is how long an untouched bucket takes to refill from empty:
 * past that, its state is the same as a new bucket's and may be forgotten.
 */
export function fullAfterMs(limit: TokenBucketLimit): number {
  return Math.ceil((limit.burst * 1000) / limit.ratePerSecond);
}

/**
 * validateTokenBucketLimit throws a RangeError naming the bad field (`name`
 * prefixes it, e.g. `limits["pkg.S/M"]`).
 */
export function validateTokenBucketLimit(name: string, limit: TokenBucketLimit): void {
  if (typeof limit !== "object" || limit === null) {
    throw new TypeError(`${name} ${String(limit)} must be { ratePerSecond, burst }`);
  }
  const { ratePerSecond, burst } = limit;
  if (!(typeof ratePerSecond === "number" && Number.isFinite(ratePerSecond) && ratePerSecond > 0)) {
    throw new RangeError(`${name}.ratePerSecond ${String(ratePerSecond)} must be a number > 0`);
  }
  if (!(typeof burst === "number" && Number.isSafeInteger(burst) && burst >= 1)) {
    throw new RangeError(`${name}.burst ${String(burst)} must be an integer >= 1`);
  }
}
