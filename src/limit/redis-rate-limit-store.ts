import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { type Clock, systemClock } from "../clock.js";
import type { RedisClientLike, RedisConnectionOptions } from "../redis-client.js";
import { openRedisConnection } from "../redis-connection.js";
import {
  type RateLimitStore,
  RateLimitStoreError,
  type RateLimitVerdict,
} from "./rate-limit-store.js";
import { fullAfterMs, type TokenBucketLimit } from "./token-bucket.js";

/**
 * RedisRateLimitStoreOptions configures createRedisRateLimitStore. Give
 * either `redis` (a connection you own and close) or `connection` (the store
 * opens and owns one; `close()` closes it).
 */
export interface RedisRateLimitStoreOptions<C extends RedisClientLike = RedisClientLike> {
  /** redis is an ioredis client to use as is (set `maxRetriesPerRequest: 0` on it). */
  readonly redis?: C;
  /** connection opens an ioredis client from a `redis://` URL or ioredis options. */
  readonly connection?: string | RedisConnectionOptions;
  /** keyPrefix starts every key the store writes; default `connect-mesh:rate-limit:`. */
  readonly keyPrefix?: string;
  /**
   * timeoutMs bounds one decision: a Redis slower than this counts as
   * unreachable and the rate limit's fail mode applies, so no call hangs on
   * the limiter; default 100.
   */
  readonly timeoutMs?: number;
  /** clock arms the timeout timers; default the system clock. */
  readonly clock?: Clock;
}

/**
 * RedisRateLimitStore is a RateLimitStore in Redis, shared by any number of
 * replicas. `C` is the type of the `redis` you gave; a connection the store
 * opened is an ioredis `Redis` typed RedisClientLike (cast it to call other
 * commands).
 */
export interface RedisRateLimitStore<C extends RedisClientLike = RedisClientLike>
  extends RateLimitStore {
  take(key: string, limit: TokenBucketLimit, cost: number): Promise<RateLimitVerdict>;
  /** redis is the client in use. */
  readonly redis: C;
  /** keyFor returns the Redis key of a bucket key (for tests and operations). */
  keyFor(bucketKey: string): string;
  /** close quits the connection if the store opened it; a given `redis` is left open. */
  close(): Promise<void>;
}

/** REDIS_RATE_LIMIT_STORE_DEFAULTS are the defaults of RedisRateLimitStoreOptions and of the connections the store opens. */
export const REDIS_RATE_LIMIT_STORE_DEFAULTS = Object.freeze({
  keyPrefix: "connect-mesh:rate-limit:",
  // A decision on a local Redis takes well under a millisecond; 100 ms is
  // far beyond a healthy one and still short next to typical call deadlines.
  timeoutMs: 100,
  // Fail queued commands on the first failed reconnect instead of after 20.
  maxRetriesPerRequest: 0,
  connectTimeout: 1_000,
});

// One atomic refill-and-take. Time is Redis's own (TIME), so replicas whose
// clocks disagree still share one bucket correctly. Scripts calling TIME
// before a write need effects replication: the default from Redis 5 on,
// asked for explicitly on 3.2-4.x. The key expires once the bucket would be
// full again (plus a second), so idle buckets cost nothing.
// KEYS[1] bucket; ARGV[1] tokens per ms, ARGV[2] burst, ARGV[3] cost,
// ARGV[4] ttl ms -> {allowed 0|1, retry after ms}.
const TAKE = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local v = redis.call("HMGET", KEYS[1], "tokens", "at")
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local wait = 0
-- Refill arithmetic rounds: waiting exactly the pushback must be enough.
if tokens + 1e-9 >= cost then
  tokens = math.max(0, tokens - cost)
  allowed = 1
else
  wait = math.ceil((math.min(cost, burst) - tokens) / rate)
  if wait < 1 then wait = 1 end
end
redis.call("HSET", KEYS[1], "tokens", string.format("%.17g", tokens))
redis.call("HSET", KEYS[1], "at", string.format("%.17g", now))
redis.call("PEXPIRE", KEYS[1], ARGV[4])
return {allowed, wait}
`;

interface Scripted {
  meshRateLimitTake(
    key: string,
    ratePerMs: string,
    burst: number,
    cost: number,
    ttlMs: number,
  ): Promise<unknown>;
}

/**
 * createRedisRateLimitStore keeps token buckets in Redis, so one limit holds
 * for all replicas of a service: each decision is one Lua script (refill and
 * take, atomically, on Redis's clock), each bucket one hash that expires when
 * idle. A decision that fails or takes longer than `timeoutMs` rejects with
 * RateLimitStoreError (the rate limit's fail mode decides the call); while the
 * connection is known to be down (ioredis reconnecting) it rejects at once.
 * Keys are the prefix and the SHA-256 of the bucket key (method and principal).
 */
export function createRedisRateLimitStore<C extends RedisClientLike = RedisClientLike>(
  options: RedisRateLimitStoreOptions<C>,
): RedisRateLimitStore<C> {
  if ((options.redis === undefined) === (options.connection === undefined)) {
    throw new TypeError("createRedisRateLimitStore: give exactly one of redis and connection");
  }
  const keyPrefix = options.keyPrefix ?? REDIS_RATE_LIMIT_STORE_DEFAULTS.keyPrefix;
  if (typeof keyPrefix !== "string") {
    throw new TypeError(`keyPrefix ${String(keyPrefix)} must be a string`);
  }
  const timeoutMs = options.timeoutMs ?? REDIS_RATE_LIMIT_STORE_DEFAULTS.timeoutMs;
  if (!(typeof timeoutMs === "number" && Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new RangeError(`timeoutMs ${String(timeoutMs)} must be a number > 0`);
  }
  const clock = options.clock ?? systemClock;
  // Only a connection the store opened is closed by it: that one is ioredis.
  const opened =
    options.redis === undefined
      ? openRedisConnection(
          options.connection as string | RedisConnectionOptions,
          CONNECTION_DEFAULTS,
        )
      : undefined;
  const redis: RedisClientLike = options.redis ?? (opened as Redis);
  redis.defineCommand("meshRateLimitTake", { numberOfKeys: 1, lua: TAKE });
  const scripted = redis as unknown as Scripted;
  const keyFor = (bucketKey: string) =>
    keyPrefix + createHash("sha256").update(bucketKey).digest("base64url");

  return {
    // Without `redis`, C is not inferred and stays RedisClientLike.
    redis: redis as C,
    keyFor,
    take(key, limit, cost) {
      // Known down: answer now rather than queue behind the reconnect.
      if (redis.status === "reconnecting" || redis.status === "end" || redis.status === "close") {
        return Promise.reject(new RateLimitStoreError(`redis is ${redis.status}`));
      }
      return new Promise<RateLimitVerdict>((resolve, reject) => {
        const timer = clock.setTimeout(() => {
          reject(new RateLimitStoreError(`redis did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        scripted
          .meshRateLimitTake(
            keyFor(key),
            String(limit.ratePerSecond / 1000),
            limit.burst,
            cost,
            fullAfterMs(limit) + 1_000,
          )
          .then(
            (reply) => {
              clock.clearTimeout(timer);
              if (
                !Array.isArray(reply) ||
                typeof reply[0] !== "number" ||
                typeof reply[1] !== "number"
              ) {
                reject(new RateLimitStoreError("redis rate limit script: bad reply"));
                return;
              }
              resolve({ allowed: reply[0] === 1, retryAfterMs: reply[1] });
            },
            (e: unknown) => {
              clock.clearTimeout(timer);
              const why = e instanceof Error ? e.message : String(e);
              reject(new RateLimitStoreError(`redis rate limit failed: ${why}`, { cause: e }));
            },
          );
      });
    },
    async close() {
      if (opened === undefined) return;
      try {
        await opened.quit();
      } catch {
        opened.disconnect();
      }
    },
  };
}

// Connections the store opens fail fast: its decisions have a short deadline.
const CONNECTION_DEFAULTS = {
  maxRetriesPerRequest: REDIS_RATE_LIMIT_STORE_DEFAULTS.maxRetriesPerRequest,
  connectTimeout: REDIS_RATE_LIMIT_STORE_DEFAULTS.connectTimeout,
};
