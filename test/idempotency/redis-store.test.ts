import { afterAll, describe, expect, it } from "vitest";
import { createRedisIdempotencyStore } from "../../src/idempotency/redis-store.js";
import { IdempotencyStoreError } from "../../src/idempotency/store.js";
import { createTestRedis, requireRedis, type TestRedis } from "../support/redis.js";
import { storeContract } from "./store-contract.js";

const hasRedis = await requireRedis();

describe.skipIf(!hasRedis)("idempotency redis store", () => {
  let t: TestRedis;
  const stores: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close();
    await t?.close();
  });

  describe("contract", () => {
    storeContract(() => {
      t ??= createTestRedis();
      const store = createRedisIdempotencyStore({ redis: t.redis, keyPrefix: t.keyPrefix });
      return { store, elapse: (ms) => new Promise((r) => setTimeout(r, ms)) };
    });
  });

  it("writes under its key prefix with the lease and TTL as Redis expiry", async () => {
    t ??= createTestRedis();
    const store = createRedisIdempotencyStore({ redis: t.redis, keyPrefix: `${t.keyPrefix}ttl:` });
    const recordKey = JSON.stringify(["p", "svc/M", "ttl-key"]);
    const c = await store.claim(recordKey, "fp", 30_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    const redisKey = store.keyFor(recordKey);
    expect(redisKey.startsWith(`${t.keyPrefix}ttl:`)).toBe(true);
    expect(redisKey).not.toContain("ttl-key");
    expect(await t.redis.pttl(redisKey)).toBeGreaterThan(29_000);
    await store.complete(recordKey, c.token, { kind: "unstored", bytes: 1 }, 3_600_000);
    expect(await t.redis.pttl(redisKey)).toBeGreaterThan(3_599_000);
  });

  it("reports a corrupt record as a store error", async () => {
    t ??= createTestRedis();
    const store = createRedisIdempotencyStore({ redis: t.redis, keyPrefix: t.keyPrefix });
    const recordKey = JSON.stringify(["p", "svc/M", "corrupt"]);
    await t.redis.set(store.keyFor(recordKey), "c\nfp\n{not json", "PX", 60_000);
    await expect(store.get(recordKey)).rejects.toThrow(IdempotencyStoreError);
    await t.redis.set(store.keyFor(recordKey), "something else", "PX", 60_000);
    await expect(store.claim(recordKey, "fp", 1_000)).rejects.toThrow(/unknown format/);
  });

  it("fails fast with a store error when Redis is unreachable (closed port)", async () => {
    const store = createRedisIdempotencyStore({ connection: { host: "127.0.0.1", port: 1 } });
    stores.push(store);
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      await expect(store.claim(`k${i}`, "fp", 1_000)).rejects.toThrow(IdempotencyStoreError);
      // maxRetriesPerRequest 0 fails on the first failed reconnect; commandTimeout caps it.
      expect(performance.now() - started).toBeLessThan(5_000);
    }
  });

  it("opens its own connection from a URL and closes it", async () => {
    t ??= createTestRedis();
    const store = createRedisIdempotencyStore({
      connection: `redis://${t.redis.options.host}:${t.redis.options.port}`,
      keyPrefix: t.keyPrefix,
    });
    expect((await store.claim(JSON.stringify(["p", "m", "url"]), "fp", 1_000)).state).toBe(
      "claimed",
    );
    await store.close();
    expect(store.redis.status).toBe("end");
  });

  it("validates its options", () => {
    expect(() => createRedisIdempotencyStore({})).toThrow(TypeError);
  });
});
