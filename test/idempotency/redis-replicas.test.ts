import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateOrderRequestSchema } from "../../gen/example/orders/v1/orders_pb.js";
import type { IdempotencyEvent } from "../../src/idempotency/events.js";
import { requestFingerprint } from "../../src/idempotency/fingerprint.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../../src/idempotency/idempotency-key.js";
import {
  createRedisIdempotencyStore,
  type RedisIdempotencyStore,
} from "../../src/idempotency/redis-store.js";
import { formatRecordKey } from "../../src/idempotency/store.js";
import {
  createTestRedis,
  REDIS_HOST,
  REDIS_PORT,
  requireRedis,
  type TestRedis,
} from "../support/redis.js";
import {
  countingOrderService,
  createOrderStats,
  keyed,
  ORDER,
  OrderService,
  type OrderStats,
  ordersClient,
  type Replica,
  startReplica,
} from "./order-fixture.js";

const hasRedis = await requireRedis();

describe.skipIf(!hasRedis)("idempotency across 3 replicas sharing Redis", () => {
  let t: TestRedis;
  let stats: OrderStats;
  const events: IdempotencyEvent[] = [];
  const stores: RedisIdempotencyStore[] = [];
  const replicas: Replica[] = [];
  const clients: ReturnType<typeof ordersClient>[] = [];

  beforeAll(async () => {
    t = createTestRedis();
    stats = createOrderStats();
    for (const name of ["r1", "r2", "r3"]) {
      // Each replica has its own connection, as separate processes would.
      const store = createRedisIdempotencyStore({
        connection: { host: REDIS_HOST, port: REDIS_PORT },
        keyPrefix: t.keyPrefix,
      });
      stores.push(store);
      const replica = await startReplica(countingOrderService(name, stats), {
        idempotency: { store, onEvent: (e) => events.push(e) },
      });
      replicas.push(replica);
      clients.push(ordersClient(replica.bound.address));
    }
  });
  afterAll(async () => {
    for (const c of clients) await c.transport.close();
    for (const r of replicas) await r.server.close({ graceMs: 0 });
    for (const s of stores) await s.close();
    await t.close();
  });

  const reset = () => {
    stats.executions = 0;
    stats.delayMs = 0;
    events.length = 0;
  };
  const client = (i: number) => (clients[i % 3] as (typeof clients)[number]).client;

  it("idempotency: duplicates in sequence on different replicas run the handler once", async () => {
    reset();
    const first = await client(0).createOrder(ORDER, keyed("replica-seq").options);
    expect(first.order?.servedBy).toBe("r1");
    for (const i of [1, 2, 0]) {
      const k = keyed("replica-seq");
      const r = await client(i).createOrder(ORDER, k.options);
      expect(r).toEqual(first);
      expect(k.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
      expect(k.seen.header?.get("x-order-served-by")).toBe("r1");
      expect(k.seen.trailer?.get("x-order-trailer")).toBe("t-r1");
    }
    expect(stats.executions).toBe(1);
  });

  it("idempotency: concurrent duplicates spread over 3 replicas run the handler once; all get one response", async () => {
    reset();
    stats.delayMs = 200;
    const calls = Array.from({ length: 9 }, () => keyed("replica-concurrent"));
    const results = await Promise.all(calls.map((c, i) => client(i).createOrder(ORDER, c.options)));
    expect(stats.executions).toBe(1);
    expect(new Set(results.map((r) => r.order?.id)).size).toBe(1);
    expect(
      calls.filter((c) => c.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER) === "true"),
    ).toHaveLength(8);
  });

  it("idempotency: an owner that crashed mid-call is taken over once its lease expires", async () => {
    reset();
    const key = "crashed-owner";
    const recordKey = formatRecordKey(
      "anonymous",
      "example.orders.v1.OrderService/CreateOrder",
      key,
    );
    const fingerprint = requestFingerprint(
      OrderService.method.createOrder,
      create(CreateOrderRequestSchema, ORDER),
    );
    // A replica claimed the key and died: it will never complete or release.
    const dead = await (stores[0] as RedisIdempotencyStore).claim(recordKey, fingerprint, 300);
    expect(dead.state).toBe("claimed");
    const started = performance.now();
    const k = keyed(key);
    const r = await client(1).createOrder(ORDER, k.options);
    const elapsed = performance.now() - started;
    expect(r.order?.servedBy).toBe("r2");
    expect(k.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
    expect(elapsed).toBeGreaterThan(250);
    // Generous on a busy host: without the takeover it would wait for the call's deadline.
    expect(elapsed).toBeLessThan(5_000);
    expect(stats.executions).toBe(1);
    expect(events.map((e) => e.type)).toEqual(["waiting", "claimed", "completed"]);
    // The dead owner's token no longer counts.
    if (dead.state === "claimed") {
      expect(await (stores[0] as RedisIdempotencyStore).release(recordKey, dead.token)).toBe(false);
    }
  });
});
