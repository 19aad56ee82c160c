// The Redis stores and queue are typed structurally (src/redis-client.ts), so
// connect-mesh's published declarations name no ioredis or bullmq type. This
// file is checked by `tsc --noEmit -p .` against the ioredis the repo
// resolves: a real ioredis client and ioredis options must still fit.

import { Redis, type RedisOptions } from "ioredis";
import { describe, expect, expectTypeOf, it } from "vitest";
import {
  createRedisIdempotencyStore,
  createRedisQueue,
  createRedisRateLimitStore,
  type RedisClientLike,
  type RedisConnectionOptions,
  type RedisIdempotencyStore,
  type RedisRateLimitStore,
} from "../../src/index.js";

// Never called: it only has to compile.
function compiles(options: RedisOptions): void {
  createRedisIdempotencyStore({ redis: new Redis() });
  createRedisRateLimitStore({ redis: new Redis(), timeoutMs: 50 });
  createRedisIdempotencyStore({ connection: options, keyPrefix: "p:" });
  createRedisIdempotencyStore({ connection: "redis://127.0.0.1:6379" });
  createRedisRateLimitStore({ connection: { ...options, connectTimeout: 500 } });
  createRedisQueue({ name: "orders", connection: options });
  createRedisQueue({ name: "orders", connection: { host: "127.0.0.1", port: 6379, db: 1 } });
  // @ts-expect-error not a Redis client: no defineCommand
  createRedisIdempotencyStore({ redis: { status: "ready" } });
  // @ts-expect-error port is a number
  createRedisIdempotencyStore({ connection: { port: "6379" } });
}

describe("Redis client types", () => {
  it("an ioredis Redis is a RedisClientLike, ioredis options are RedisConnectionOptions", () => {
    expectTypeOf<Redis>().toExtend<RedisClientLike>();
    expectTypeOf<RedisOptions>().toExtend<RedisConnectionOptions>();
    expect(compiles).toBeTypeOf("function");
  });

  it("a store keeps the type of the client it was given", () => {
    // lazyConnect: no connection is made; defineCommand works offline.
    const redis = new Redis({ lazyConnect: true });
    try {
      const idempotency = createRedisIdempotencyStore({ redis });
      const rateLimit = createRedisRateLimitStore({ redis });
      expectTypeOf(idempotency).toEqualTypeOf<RedisIdempotencyStore<Redis>>();
      expectTypeOf(rateLimit).toEqualTypeOf<RedisRateLimitStore<Redis>>();
      expect(idempotency.redis).toBe(redis);
      expect(rateLimit.redis).toBe(redis);
      expectTypeOf(createRedisIdempotencyStore).returns.toEqualTypeOf<RedisIdempotencyStore>();
    } finally {
      redis.disconnect();
    }
  });
});
