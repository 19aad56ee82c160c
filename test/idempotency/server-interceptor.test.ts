import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { CreateOrderRequestSchema } from "../../gen/example/orders/v1/orders_pb.js";
import { ErrorInfoSchema } from "../../src/idempotency/error-info.js";
import type { IdempotencyEvent } from "../../src/idempotency/events.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../../src/idempotency/idempotency-key.js";
import { createMemoryIdempotencyStore } from "../../src/idempotency/memory-store.js";
import { createRedisIdempotencyStore } from "../../src/idempotency/redis-store.js";
import {
  createIdempotencyInterceptor,
  type IdempotencyInterceptorOptions,
} from "../../src/idempotency/server-interceptor.js";
import {
  type IdempotencyStore,
  IdempotencyStoreError,
  syncStoreOf,
} from "../../src/idempotency/store.js";
import {
  createMeshServer,
  type MeshServerOptions,
  type MeshTransport,
  type MeshTransportOptions,
} from "../../src/index.js";
import { rawGrpcCall } from "../support/raw-grpc.js";
import {
  callOutcome,
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

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Setup {
  stats: OrderStats;
  replica: Replica;
  client: ReturnType<typeof ordersClient>["client"];
  transport: MeshTransport;
  events: IdempotencyEvent[];
}

/**
 * setup starts one replica whose built-in idempotency interceptor (the mesh
 * server's `idempotency` slot) gets `options`, and a client that sends only
 * the keys the test gives and makes one attempt per call (`retry: false`,
 * `idempotencyKeys: false`), so codes and handler counts are the server's own.
 */
async function setup(
  options: IdempotencyInterceptorOptions = {},
  more: {
    server?: Omit<MeshServerOptions, "routes">;
    client?: Omit<MeshTransportOptions, "target">;
  } = {},
): Promise<Setup> {
  const stats = createOrderStats();
  const events: IdempotencyEvent[] = [];
  const replica = await startReplica(countingOrderService("r1", stats), {
    ...more.server,
    idempotency: { onEvent: (e) => events.push(e), ...options },
  });
  const { client, transport } = ordersClient(replica.bound.address, {
    retry: false,
    idempotencyKeys: false,
    ...more.client,
  });
  cleanups.push(async () => {
    await transport.close();
    await replica.server.close({ graceMs: 0 });
  });
  return { stats, replica, client, transport, events };
}

/** sharedStore is a memory store posing as one other processes share: it heartbeats. */
function sharedStore(): IdempotencyStore {
  const { sameProcess: _sameProcess, ...store } = createMemoryIdempotencyStore();
  return store;
}

const createOrderPath = "/example.orders.v1.OrderService/CreateOrder";
const orderBytes = toBinary(CreateOrderRequestSchema, create(CreateOrderRequestSchema, ORDER));

describe("idempotency server interceptor (one replica, memory store)", () => {
  it("idempotency: duplicates in sequence run the handler once and replay message, headers and trailers", async () => {
    const { client, stats } = await setup();
    const first = keyed("seq-key-1");
    const r1 = await client.createOrder(ORDER, first.options);
    expect(first.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
    for (let i = 0; i < 3; i++) {
      const again = keyed("seq-key-1");
      const r = await client.createOrder(ORDER, again.options);
      expect(r).toEqual(r1);
      expect(again.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
      expect(again.seen.header?.get("x-order-served-by")).toBe("r1");
      expect(again.seen.trailer?.get("x-order-trailer")).toBe("t-r1");
    }
    expect(stats.executions).toBe(1);
    // Another key is another operation.
    const other = await client.createOrder(ORDER, keyed("seq-key-2").options);
    expect(other.order?.id).not.toBe(r1.order?.id);
    expect(stats.executions).toBe(2);
  });

  it("idempotency: concurrent duplicates wait for the first call and all get its response", async () => {
    const { client, stats, events } = await setup();
    stats.delayMs = 150;
    const calls = Array.from({ length: 5 }, () => keyed("concurrent-key"));
    const results = await Promise.all(calls.map((c) => client.createOrder(ORDER, c.options)));
    expect(stats.executions).toBe(1);
    expect(new Set(results.map((r) => r.order?.id)).size).toBe(1);
    const replayed = calls.filter(
      (c) => c.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER) === "true",
    );
    expect(replayed).toHaveLength(4);
    expect(events.filter((e) => e.type === "waiting")).toHaveLength(4);
  });

  it("idempotency: a key reused with a different payload is FAILED_PRECONDITION with ErrorInfo IDEMPOTENCY_KEY_REUSED", async () => {
    const { client, stats } = await setup();
    await client.createOrder(ORDER, keyed("reused-key").options);
    const out = await callOutcome(
      client.createOrder({ ...ORDER, customerId: "c-2" }, keyed("reused-key").options),
    );
    expect(out.ok).toBe(false);
    if (out.ok) return;
    expect(out.error.code).toBe(Code.FailedPrecondition);
    expect(out.error.rawMessage).not.toContain("reused-key");
    const [info] = out.error.findDetails(ErrorInfoSchema);
    expect(info).toMatchObject({ reason: "IDEMPOTENCY_KEY_REUSED", domain: "connect-mesh" });
    expect(stats.executions).toBe(1);
  });

  it.each([
    ["empty", "", "is empty"],
    ["256 characters", "k".repeat(256), "is 256 characters"],
    ["non-ASCII", "clé-1", "want printable ASCII"],
    ["a control character (tab)", "key\tone", "U+0009"],
    ["two values", ["key-one", "key-two"], "exactly one value, got 2"],
  ])(
    "idempotency: rejects a bad key (%s) with INVALID_ARGUMENT, handler not run",
    async (_, key, problem) => {
      const { replica, stats } = await setup();
      const res = await rawGrpcCall(replica.bound.url, createOrderPath, orderBytes, {
        "idempotency-key": key as string,
      });
      expect(res.status).toBe(Code.InvalidArgument);
      expect(res.message).toContain(problem);
      if (typeof key === "string" && key.length > 8) expect(res.message).not.toContain(key);
      expect(stats.executions).toBe(0);
    },
  );

  it("idempotency: a required key that is missing is INVALID_ARGUMENT; other methods still run without", async () => {
    const { client, stats } = await setup({
      methods: { "example.orders.v1.OrderService/CreateOrder": { required: true } },
    });
    const out = await callOutcome(client.createOrder(ORDER));
    expect(!out.ok && out.error.code).toBe(Code.InvalidArgument);
    expect(!out.ok && out.error.rawMessage).toBe(
      "idempotency-key is required for example.orders.v1.OrderService/CreateOrder",
    );
    expect(stats.executions).toBe(0);
    const cancel = await callOutcome(client.cancelOrder({ id: "nope" }));
    expect(!cancel.ok && cancel.error.code).toBe(Code.NotFound);
  });

  it("idempotency: without a key (and not required) every call runs the handler", async () => {
    const { client, stats } = await setup();
    await client.createOrder(ORDER);
    await client.createOrder(ORDER);
    expect(stats.executions).toBe(2);
  });

  it("idempotency: a key on a streaming call is INVALID_ARGUMENT", async () => {
    const { client } = await setup();
    const out = await callOutcome(
      (async () => {
        for await (const _ of client.watchOrders(
          { customerId: "c-1" },
          { headers: { "idempotency-key": "stream-key" }, timeoutMs: 1_000 },
        )) {
          // no messages expected
        }
      })(),
    );
    expect(!out.ok && out.error.code).toBe(Code.InvalidArgument);
    expect(!out.ok && out.error.rawMessage).toContain("not supported on streaming calls");
  });

  it("idempotency: NO_SIDE_EFFECTS methods ignore the key and are never replayed", async () => {
    const { client, events } = await setup();
    for (let i = 0; i < 2; i++) {
      const k = keyed("read-key");
      const out = await callOutcome(client.getOrder({ id: "missing" }, k.options));
      expect(!out.ok && out.error.code).toBe(Code.NotFound);
      expect(!out.ok && out.error.metadata.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
    }
    expect(events).toEqual([]);
  });

  it("idempotency: deterministic errors are stored and replayed with code, message, details and metadata", async () => {
    const { client, stats } = await setup();
    stats.failWith.push(
      new ConnectError("customer c-1 is blocked", Code.PermissionDenied, { "x-why": "blocked" }, [
        { desc: ErrorInfoSchema, value: { reason: "CUSTOMER_BLOCKED", domain: "orders.example" } },
      ]),
    );
    const errors: ConnectError[] = [];
    for (let i = 0; i < 2; i++) {
      const out = await callOutcome(client.createOrder(ORDER, keyed("error-key").options));
      if (out.ok) throw new Error("expected an error");
      errors.push(out.error);
    }
    expect(stats.executions).toBe(1);
    const [original, replay] = errors as [ConnectError, ConnectError];
    expect(replay.code).toBe(Code.PermissionDenied);
    expect(replay.rawMessage).toBe(original.rawMessage);
    expect(replay.findDetails(ErrorInfoSchema)).toEqual(original.findDetails(ErrorInfoSchema));
    expect(replay.findDetails(ErrorInfoSchema)[0]?.reason).toBe("CUSTOMER_BLOCKED");
    expect(replay.metadata.get("x-why")).toBe("blocked");
    expect(replay.metadata.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
    expect(original.metadata.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
  });

  // UNAVAILABLE is left out: the mesh transport may retry it by itself.
  it.each([Code.Internal, Code.ResourceExhausted, Code.Unknown])(
    "idempotency: a transient error (code %s) releases the key so a retry runs the handler",
    async (code) => {
      const { client, stats, events } = await setup();
      stats.failWith.push(new ConnectError("try again", code));
      const first = await callOutcome(client.createOrder(ORDER, keyed("transient-key").options));
      expect(!first.ok && first.error.code).toBe(code);
      const second = keyed("transient-key");
      const r = await client.createOrder(ORDER, second.options);
      expect(r.order?.customerId).toBe("c-1");
      expect(second.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
      expect(stats.executions).toBe(2);
      expect(events.map((e) => e.type)).toEqual(["claimed", "released", "claimed", "completed"]);
    },
  );

  it("idempotency: keys are scoped by principal: same key, two principals, two executions, no cross replay", async () => {
    const { client, stats } = await setup({
      principal: (req) => req.header.get("x-principal") ?? "anonymous",
    });
    const as = (principal: string) => ({
      headers: { "idempotency-key": "shared-key", "x-principal": principal },
    });
    const alice1 = await client.createOrder(ORDER, as("alice"));
    const bob1 = await client.createOrder(ORDER, as("bob"));
    expect(stats.executions).toBe(2);
    expect(bob1.order?.id).not.toBe(alice1.order?.id);
    expect((await client.createOrder(ORDER, as("alice"))).order?.id).toBe(alice1.order?.id);
    expect((await client.createOrder(ORDER, as("bob"))).order?.id).toBe(bob1.order?.id);
    expect(stats.executions).toBe(2);
  });

  it("idempotency: an interceptor also given in `interceptors` decides alone; the built-in one passes the call through", async () => {
    // The way it was installed before mesh servers built it in: without the
    // guard, the built-in layer (principal "anonymous") would replay alice's
    // order to bob.
    const outer: IdempotencyEvent[] = [];
    const { client, stats, events } = await setup(
      {},
      {
        server: {
          interceptors: [
            createIdempotencyInterceptor({
              principal: (req) => req.header.get("x-principal") ?? "anonymous",
              onEvent: (e) => outer.push(e),
            }),
          ],
        },
      },
    );
    const as = (principal: string) => ({
      headers: { "idempotency-key": "layered-key", "x-principal": principal },
    });
    const alice1 = await client.createOrder(ORDER, as("alice"));
    const bob1 = await client.createOrder(ORDER, as("bob"));
    expect(stats.executions).toBe(2);
    expect(bob1.order?.id).not.toBe(alice1.order?.id);
    expect((await client.createOrder(ORDER, as("bob"))).order?.id).toBe(bob1.order?.id);
    expect(stats.executions).toBe(2);
    expect(outer.map((e) => e.type)).toEqual([
      "claimed",
      "completed",
      "claimed",
      "completed",
      "replayed",
    ]);
    expect(events).toEqual([]);
  });

  it("idempotency: with onConcurrent abort a duplicate in flight gets ABORTED, IDEMPOTENCY_KEY_IN_USE and a pushback", async () => {
    const { client, stats } = await setup({ onConcurrent: "abort", retryPushbackMs: 250 });
    stats.delayMs = 2_000;
    const first = client.createOrder(ORDER, keyed("abort-key").options);
    await expect.poll(() => stats.executions).toBe(1);
    const dup = await callOutcome(client.createOrder(ORDER, keyed("abort-key").options));
    expect(!dup.ok && dup.error.code).toBe(Code.Aborted);
    if (dup.ok) return;
    expect(dup.error.findDetails(ErrorInfoSchema)[0]).toMatchObject({
      reason: "IDEMPOTENCY_KEY_IN_USE",
      domain: "connect-mesh",
    });
    expect(dup.error.metadata.get("grpc-retry-pushback-ms")).toBe("250");
    const r1 = await first;
    expect((await client.createOrder(ORDER, keyed("abort-key").options)).order?.id).toBe(
      r1.order?.id,
    );
    expect(stats.executions).toBe(1);
  });

  it("idempotency: a waiting duplicate gives up at its own deadline; a later one gets the replay", async () => {
    const { client, stats } = await setup();
    stats.delayMs = 3_000;
    const first = client.createOrder(ORDER, keyed("deadline-key").options);
    await expect.poll(() => stats.executions).toBe(1);
    const dup = await callOutcome(
      client.createOrder(ORDER, { ...keyed("deadline-key").options, timeoutMs: 100 }),
    );
    expect(!dup.ok && dup.error.code).toBe(Code.DeadlineExceeded);
    // It gave up at its own deadline, while the first call was still running.
    expect(stats.executions).toBe(1);
    const settledFirst = await Promise.race([first.then(() => true), Promise.resolve(false)]);
    expect(settledFirst).toBe(false);
    const r1 = await first;
    expect((await client.createOrder(ORDER, keyed("deadline-key").options)).order?.id).toBe(
      r1.order?.id,
    );
    expect(stats.executions).toBe(1);
  });

  it("idempotency: the claim's lease is claimLeaseMs with a store that renews", async () => {
    const { client, events } = await setup({
      leaseMarginMs: 500,
      claimLeaseMs: 1_500,
      store: sharedStore(),
    });
    await client.createOrder(ORDER, { ...keyed("lease-key").options, timeoutMs: 5_000 });
    const claimed = events.find((e) => e.type === "claimed");
    expect(claimed?.type === "claimed" && claimed.leaseMs).toBe(1_500);
  });

  it("idempotency: a user interceptor that changes the response in place is seen on the wire, first call and replay", async () => {
    // The handler may send the bytes the interceptor stored only when nothing
    // further out can change the message: here a user interceptor does.
    const redact: Interceptor = (next) => async (req) => {
      const res = await next(req);
      const order = (res.message as { order?: { customerId: string } }).order;
      if (!res.stream && order !== undefined) order.customerId = "redacted";
      return res;
    };
    const { client, stats } = await setup({}, { server: { interceptors: [redact] } });
    const first = await client.createOrder(ORDER, keyed("redact-key").options);
    expect(first.order?.customerId).toBe("redacted");
    const dup = keyed("redact-key");
    const replay = await client.createOrder(ORDER, dup.options);
    expect(dup.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
    expect(replay).toEqual(first);
    expect(stats.executions).toBe(1);
  });

  it("idempotency: with the memory store (same process) the lease follows the call's deadline, no heartbeat", async () => {
    const { client, events } = await setup({ leaseMarginMs: 500, claimLeaseMs: 1_500 });
    await client.createOrder(ORDER, { ...keyed("lease-key").options, timeoutMs: 5_000 });
    const claimed = events.find((e) => e.type === "claimed");
    expect(claimed?.type === "claimed" && claimed.leaseMs).toBeGreaterThan(5_000);
    expect(claimed?.type === "claimed" && claimed.leaseMs).toBeLessThanOrEqual(5_500);
  });

  it("idempotency: with a store that cannot renew, the lease follows the call's deadline plus the margin", async () => {
    const { renew: _renew, ...noRenew } = createMemoryIdempotencyStore();
    const { client, events } = await setup({ leaseMarginMs: 500, store: noRenew });
    await client.createOrder(ORDER, { ...keyed("lease-key").options, timeoutMs: 2_000 });
    const claimed = events.find((e) => e.type === "claimed");
    expect(claimed?.type === "claimed" && claimed.leaseMs).toBeGreaterThan(2_000);
    expect(claimed?.type === "claimed" && claimed.leaseMs).toBeLessThanOrEqual(2_500);
  });

  it("idempotency: the owner's heartbeat keeps a handler running past claimLeaseMs; a duplicate waits and replays", async () => {
    // 8 beats per lease: a busy host may delay a few without losing the claim.
    const { client, stats, events } = await setup({
      claimLeaseMs: 800,
      claimRenewMs: 100,
      store: sharedStore(),
    });
    stats.delayMs = 2_000;
    const first = client.createOrder(ORDER, keyed("beat-key").options);
    await expect.poll(() => stats.executions).toBe(1);
    const dup = keyed("beat-key");
    const second = await client.createOrder(ORDER, dup.options);
    expect(second).toEqual(await first);
    expect(dup.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
    expect(stats.executions).toBe(1);
    expect(events.filter((e) => e.type === "claim-expired" || e.type === "claim-lost")).toEqual([]);
  });

  it("idempotency: an owner whose renewals fail loses the key to a duplicate and cannot overwrite its outcome", async () => {
    const store = createMemoryIdempotencyStore();
    // r1 cannot reach the store for renewals (down for it alone); r2 can.
    const failing: IdempotencyStore = {
      claim: (...a) => store.claim(...a),
      complete: (...a) => store.complete(...a),
      release: (...a) => store.release(...a),
      get: (...a) => store.get(...a),
      renew: async () => {
        throw new IdempotencyStoreError("store down");
      },
    };
    const opts = { claimLeaseMs: 150, claimRenewMs: 30 };
    const a = await setup({ ...opts, store: failing });
    const b = await setup({ ...opts, store });
    a.stats.delayMs = 900;
    const first = a.client.createOrder(ORDER, keyed("lost-key").options);
    await expect.poll(() => a.stats.executions).toBe(1);
    const second = await b.client.createOrder(ORDER, keyed("lost-key").options);
    expect(b.stats.executions).toBe(1);
    expect(b.events.map((e) => e.type)).toEqual(["waiting", "claimed", "completed"]);
    // The first owner's own answer still reaches its caller, but not the store.
    const r1 = await first;
    expect(r1.order?.id).not.toBe(second.order?.id);
    expect(a.events.some((e) => e.type === "store-error" && e.operation === "renew")).toBe(true);
    expect(a.events.at(-1)?.type).toBe("claim-lost");
    const replay = keyed("lost-key");
    expect(await b.client.createOrder(ORDER, replay.options)).toEqual(second);
    expect(replay.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
  });

  it("idempotency: a too-large response is returned, not stored, and marked so a duplicate does not run the handler", async () => {
    const { client, stats, events } = await setup({ maxStoredBytes: 20 });
    const r1 = await client.createOrder(ORDER, keyed("big-key").options);
    expect(r1.order?.customerId).toBe("c-1");
    const dup = await callOutcome(client.createOrder(ORDER, keyed("big-key").options));
    expect(!dup.ok && dup.error.code).toBe(Code.FailedPrecondition);
    expect(!dup.ok && dup.error.findDetails(ErrorInfoSchema)[0]?.reason).toBe(
      "IDEMPOTENCY_OUTCOME_NOT_STORED",
    );
    expect(stats.executions).toBe(1);
    expect(events.find((e) => e.type === "too-large")).toMatchObject({
      maxBytes: 20,
      action: "mark",
    });
  });

  it("idempotency: with onTooLarge release, a duplicate of a too-large response runs the handler again", async () => {
    const { client, stats } = await setup({ maxStoredBytes: 20, onTooLarge: "release" });
    await client.createOrder(ORDER, keyed("big-key-2").options);
    await client.createOrder(ORDER, keyed("big-key-2").options);
    expect(stats.executions).toBe(2);
  });

  it("idempotency: events name the key by digest only, never the key", async () => {
    const { client, events } = await setup();
    await client.createOrder(ORDER, keyed("secret-key-value").options);
    await client.createOrder(ORDER, keyed("secret-key-value").options);
    expect(events.map((e) => e.type)).toEqual(["claimed", "completed", "replayed"]);
    expect(JSON.stringify(events)).not.toContain("secret-key-value");
    expect(events[0]).toMatchObject({
      method: "example.orders.v1.OrderService/CreateOrder",
      principal: "anonymous",
    });
    expect(events[0]?.keyDigest).toMatch(/^[0-9a-f]{12}$/);
  });

  it("idempotency: store unreachable fails closed with UNAVAILABLE and does not run the handler", async () => {
    const store = createRedisIdempotencyStore({ connection: { host: "127.0.0.1", port: 1 } });
    cleanups.push(() => store.close());
    const { client, stats, events } = await setup({ store });
    const started = performance.now();
    const out = await callOutcome(client.createOrder(ORDER, keyed("down-key").options));
    expect(!out.ok && out.error.code).toBe(Code.Unavailable);
    expect(!out.ok && out.error.rawMessage).toContain("idempotency store is unavailable");
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(stats.executions).toBe(0);
    expect(events[0]).toMatchObject({ type: "store-error", operation: "claim", failOpen: false });
    // Calls without a key do not touch the store.
    await client.createOrder(ORDER);
    expect(stats.executions).toBe(1);
  });

  it("idempotency: with failOpen an unreachable store lets the handler run unprotected", async () => {
    const store = createRedisIdempotencyStore({ connection: { host: "127.0.0.1", port: 1 } });
    cleanups.push(() => store.close());
    const { client, stats, events } = await setup({ store, failOpen: true });
    await client.createOrder(ORDER, keyed("open-key").options);
    await client.createOrder(ORDER, keyed("open-key").options);
    expect(stats.executions).toBe(2);
    expect(events.filter((e) => e.type === "store-error")).toHaveLength(2);
  });

  it("idempotency: createMeshServer validates its idempotency options at construction", () => {
    expect(() =>
      createMeshServer({
        routes: (r) => r.service(OrderService, countingOrderService("r1", createOrderStats())),
        idempotency: { ttlMs: -1 },
      }),
    ).toThrow(RangeError);
  });

  it.each([
    [{ maxLeaseMs: 0 }, RangeError],
    [{ ttlMs: -1 }, RangeError],
    [{ maxStoredBytes: Number.NaN }, RangeError],
    [{ leaseMarginMs: -1 }, RangeError],
    [{ claimLeaseMs: 0 }, RangeError],
    [{ claimRenewMs: Number.POSITIVE_INFINITY }, RangeError],
    [{ claimLeaseMs: 500, claimRenewMs: 500 }, RangeError],
    [{ minPollMs: 50, maxPollMs: 10 }, RangeError],
    [{ onConcurrent: "queue" }, RangeError],
    [{ onTooLarge: "drop" }, RangeError],
    [{ storedErrorCodes: [99] }, RangeError],
    [{ methods: { CreateOrder: { required: true } } }, RangeError],
    [{ store: {} }, TypeError],
  ])("idempotency: rejects bad options %j at construction", (options, type) => {
    expect(() => createIdempotencyInterceptor(options as IdempotencyInterceptorOptions)).toThrow(
      type,
    );
  });
});

describe("idempotency server interceptor: the memory store's synchronous face", () => {
  // wrapped is the same memory store behind its promise-returning methods
  // only (what any other store offers): the interceptor must take the
  // general path for it, and answer exactly as on the synchronous one.
  const wrapped = (store: IdempotencyStore): IdempotencyStore => ({
    claim: (...a) => store.claim(...a),
    complete: (...a) => store.complete(...a),
    release: (...a) => store.release(...a),
    get: (...a) => store.get(...a),
    sameProcess: true,
  });

  it("syncStoreOf finds it on the store itself only, never on a wrapper, a spread copy or a store with a replaced operation", async () => {
    const store = createMemoryIdempotencyStore();
    expect(syncStoreOf(store)).toBeDefined();
    expect(syncStoreOf({ ...store })).toBeUndefined();
    expect(syncStoreOf(wrapped(store))).toBeUndefined();
    const counting = Object.assign(Object.create(store) as IdempotencyStore, {
      claim: store.claim,
      complete: async () => false,
    });
    expect(syncStoreOf(counting)).toBeUndefined();
    expect(
      syncStoreOf(Object.assign(Object.create(store), { transactional: true })),
    ).toBeUndefined();
    // The face answers for the very same records.
    const face = syncStoreOf(store);
    const claim = face?.claim("k", "fp", 1_000);
    expect(claim?.state).toBe("claimed");
    expect((await store.get("k"))?.state).toBe("in-progress");
  });

  it("a call sequence (ok, replay, reused key, stored and released errors, too large, full store) answers and reports the same on both paths", async () => {
    const run = async (direct: boolean) => {
      const memory = createMemoryIdempotencyStore({ maxEntries: 6 });
      const { client, stats, events } = await setup({
        store: direct ? memory : wrapped(memory),
        maxStoredBytes: 300,
      });
      const outcomes: unknown[] = [];
      const call = async (key: string, order = ORDER) => {
        const k = keyed(key);
        const out = await callOutcome(client.createOrder(order, k.options));
        outcomes.push(
          out.ok
            ? { ok: true, replayed: k.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER) ?? null }
            : { ok: false, code: out.error.code, message: out.error.rawMessage },
        );
      };
      await call("a");
      await call("a");
      await call("a", { ...ORDER, customerId: "c-2" });
      stats.failWith.push(new ConnectError("no such customer", Code.NotFound));
      await call("b");
      await call("b");
      stats.failWith.push(new ConnectError("flaky", Code.Unavailable));
      await call("c");
      await call("c");
      const big = { ...ORDER, customerId: `c-${"x".repeat(400)}` };
      await call("big", big);
      await call("big", big);
      return {
        outcomes,
        executions: stats.executions,
        events: events.map((e) => e.type),
        stats: memory.stats(),
      };
    };
    const direct = await run(true);
    const general = await run(false);
    expect(general).toEqual(direct);
    // And what they agree on is right.
    expect(direct.executions).toBe(5);
    expect(direct.outcomes).toEqual([
      { ok: true, replayed: null },
      { ok: true, replayed: "true" },
      expect.objectContaining({ ok: false, code: Code.FailedPrecondition }),
      { ok: false, code: Code.NotFound, message: "no such customer" },
      { ok: false, code: Code.NotFound, message: "no such customer" },
      { ok: false, code: Code.Unavailable, message: "flaky" },
      { ok: true, replayed: null },
      { ok: true, replayed: null },
      expect.objectContaining({ ok: false, code: Code.FailedPrecondition }),
    ]);
    expect(direct.events).toEqual([
      "claimed",
      "completed",
      "replayed",
      "conflict",
      "claimed",
      "completed",
      "replayed",
      "claimed",
      "released",
      "claimed",
      "completed",
      "claimed",
      "too-large",
      "completed",
      "replayed",
    ]);
  });

  it("a full store answers UNAVAILABLE without running the handler, on both paths", async () => {
    for (const direct of [true, false]) {
      const memory = createMemoryIdempotencyStore({ maxEntries: 1 });
      const { client, stats, events } = await setup({ store: direct ? memory : wrapped(memory) });
      stats.delayMs = 300;
      const first = client.createOrder(ORDER, keyed("one").options);
      await expect.poll(() => stats.executions).toBe(1);
      const out = await callOutcome(client.createOrder(ORDER, keyed("two").options));
      expect(out.ok, `direct ${direct}`).toBe(false);
      if (!out.ok) expect(out.error.code).toBe(Code.Unavailable);
      await first;
      expect(stats.executions).toBe(1);
      expect(events.filter((e) => e.type === "store-error").map((e) => e.operation)).toEqual([
        "claim",
      ]);
    }
  });
});
