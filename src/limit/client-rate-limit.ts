import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { type Clock, systemClock } from "../clock.js";
import type { RateLimitEvent } from "./rate-limit-events.js";
import {
  type TokenBucketLimit,
  type TokenBucketState,
  takeToken,
  validateTokenBucketLimit,
} from "./token-bucket.js";

/** ClientRateLimitOptions configures createClientRateLimit (the transport's `rateLimit` option). */
export interface ClientRateLimitOptions {
  /** ratePerSecond is the most calls per second the transport sends to its target (> 0). */
  readonly ratePerSecond: number;
  /** burst is how many may go at once after a quiet spell; default one second's worth (ceil(ratePerSecond), at least 1). */
  readonly burst?: number;
  /** per: `"target"` (default) one bucket for the transport, `"method"` one per method. */
  readonly per?: "target" | "method";
  /** onEvent receives a `rate-limited` event per refused call. */
  readonly onEvent?: (event: RateLimitEvent) => void;
}

/**
 * createClientRateLimit builds a client interceptor (the "rate-limit" slot,
 * once per logical call, outside retries) that refuses calls over a token
 * bucket limit locally: RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`,
 * nothing sent.
 */
export function createClientRateLimit(
  options: ClientRateLimitOptions,
  deps: { readonly target: string; readonly clock?: Clock },
): Interceptor {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("rateLimit must be { ratePerSecond, burst?, per? }");
  }
  const limit: TokenBucketLimit = Object.freeze({
    ratePerSecond: options.ratePerSecond,
    burst: options.burst ?? Math.max(1, Math.ceil(options.ratePerSecond)),
  });
  validateTokenBucketLimit("rateLimit", limit);
  const per = options.per ?? "target";
  if (per !== "target" && per !== "method") {
    throw new RangeError(`rateLimit.per ${JSON.stringify(per)} must be "target" or "method"`);
  }
  const clock = deps.clock ?? systemClock;
  // Per method the key set is bounded by the services' methods.
  const buckets = new Map<string, TokenBucketState>();
  return (next) => (req) => {
    const key = per === "method" ? `${req.service.typeName}/${req.method.name}` : "";
    const decision = takeToken(limit, buckets.get(key), clock.now());
    buckets.set(key, decision.state);
    if (!decision.allowed) {
      const name = per === "method" ? key : deps.target;
      options.onEvent?.({
        type: "rate-limited",
        method: name,
        per,
        ratePerSecond: limit.ratePerSecond,
        retryAfterMs: decision.retryAfterMs,
      });
      return Promise.reject(
        new ConnectError(
          `client rate limit of ${limit.ratePerSecond} calls/s reached for ${name}: not sent`,
          Code.ResourceExhausted,
          new Headers({ [RETRY_PUSHBACK_HEADER]: String(decision.retryAfterMs) }),
        ),
      );
    }
    return next(req);
  };
}
