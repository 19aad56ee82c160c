// Redis for the tests that need one (the idempotency store). Tests call
// requireRedis() at the top of their file and skip loudly when it is absent
// (fail with MESH_REQUIRE_SERVICES=1). Every test file writes under its own
// random key prefix and deletes it afterwards, so files run in parallel and
// leave nothing behind.

import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { requireService, tcpProbe } from "./services.js";

/** REDIS_HOST and REDIS_PORT say where the test Redis runs (env MESH_REDIS_HOST/PORT). */
export const REDIS_HOST = process.env.MESH_REDIS_HOST ?? "127.0.0.1";
export const REDIS_PORT = Number(process.env.MESH_REDIS_PORT ?? 6379);

/** requireRedis returns true when Redis answers on REDIS_HOST:REDIS_PORT. */
export function requireRedis(): Promise<boolean> {
  return requireService(
    "redis",
    tcpProbe(REDIS_HOST, REDIS_PORT),
    "install and start one: apt-get install -y redis-server && redis-server --daemonize yes",
  );
}

/** TestRedis is a connection plus a key prefix private to one test file. */
export interface TestRedis {
  readonly redis: Redis;
  /** keyPrefix is unique per call of createTestRedis; pass it to the store. */
  readonly keyPrefix: string;
  /** keys lists the keys written under keyPrefix. */
  keys(): Promise<string[]>;
  /** close deletes every key under keyPrefix and closes the connection. */
  close(): Promise<void>;
}

/** createTestRedis connects to the test Redis with a fresh key prefix. */
export function createTestRedis(): TestRedis {
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT, maxRetriesPerRequest: 0 });
  redis.on("error", () => {});
  const keyPrefix = `connect-mesh-test:${randomUUID()}:`;
  const keys = async () => {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", `${keyPrefix}*`, "COUNT", 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== "0");
    return found;
  };
  return {
    redis,
    keyPrefix,
    keys,
    async close() {
      const all = await keys();
      if (all.length > 0) await redis.del(...all);
      await redis.quit();
    },
  };
}
