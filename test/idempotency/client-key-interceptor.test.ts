import { Code, ConnectError, createContextValues, type Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createIdempotencyKeyInterceptor,
  type IdempotencyKeyInterceptorOptions,
  idempotencyKeyKey,
} from "../../src/idempotency/client-key-interceptor.js";
import { IDEMPOTENCY_KEY_HEADER } from "../../src/idempotency/idempotency-key.js";
import type { RetryOptions } from "../../src/index.js";
import {
  callOutcome,
  countingOrderService,
  createOrderStats,
  ORDER,
  type OrderStats,
  ordersClient,
  startReplica,
} from "./order-fixture.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** seenKeys records, per method name, the idempotency-key each call arrived with. */
function keyRecorder(seen: { method: string; key: string | null }[]): Interceptor {
  return (next) => async (req) => {
    seen.push({ method: req.method.name, key: req.header.get(IDEMPOTENCY_KEY_HEADER) });
    return next(req);
  };
}

/** repeatAttempts stands in for a retry loop: it sends every unary call twice. */
const repeatAttempts: Interceptor = (next) => async (req) => {
  if (req.stream) return next(req);
  await next(req);
  return next(req);
};

/**
 * setup starts a replica that records the keys calls arrive with (server
 * idempotency off unless asked for) and a client whose built-in key
 * interceptor (the transport's `idempotencyKeys` slot) gets `options`, with
 * one attempt per call unless `retry` is given.
 */
async function setup(
  options: IdempotencyKeyInterceptorOptions | false,
  extra: {
    clientInterceptors?: Interceptor[];
    serverIdempotency?: boolean;
    retry?: RetryOptions;
    serverInterceptors?: Interceptor[];
  } = {},
): Promise<{
  client: ReturnType<typeof ordersClient>["client"];
  seen: { method: string; key: string | null }[];
  stats: OrderStats;
}> {
  const seen: { method: string; key: string | null }[] = [];
  const stats = createOrderStats();
  const replica = await startReplica(countingOrderService("r1", stats), {
    interceptors: [keyRecorder(seen), ...(extra.serverInterceptors ?? [])],
    idempotency: extra.serverIdempotency === true ? {} : false,
  });
  const { client, transport } = ordersClient(replica.bound.address, {
    idempotencyKeys: options,
    retry: extra.retry ?? false,
    interceptors: extra.clientInterceptors ?? [],
  });
  cleanups.push(async () => {
    await transport.close();
    await replica.server.close({ graceMs: 0 });
  });
  return { client, seen, stats };
}

/** loseFirstResponse lets the handler run, then fails the first call with UNAVAILABLE. */
function loseFirstResponse(): Interceptor {
  let arrivals = 0;
  return (next) => async (req) => {
    const res = await next(req);
    if (++arrivals === 1) throw new ConnectError("response lost", Code.Unavailable);
    return res;
  };
}

describe("idempotency key client interceptor", () => {
  it("idempotency: mode auto adds a UUID v4 key to methods with side effects only", async () => {
    const { client, seen } = await setup({ mode: "auto" });
    await client.createOrder(ORDER);
    await client.createOrder(ORDER);
    await callOutcome(client.cancelOrder({ id: "x" })); // IDEMPOTENT: keyed too
    await callOutcome(client.getOrder({ id: "x" })); // NO_SIDE_EFFECTS: no key
    const [c1, c2, cancel, get] = seen;
    expect(c1?.key).toMatch(UUID_V4);
    expect(c2?.key).toMatch(UUID_V4);
    expect(c2?.key).not.toBe(c1?.key);
    expect(cancel).toMatchObject({ method: "CancelOrder" });
    expect(cancel?.key).toMatch(UUID_V4);
    expect(get).toEqual({ method: "GetOrder", key: null });
  });

  it("idempotency: streaming calls get no key", async () => {
    const { client, seen } = await setup({ mode: "auto" });
    const stream = client.watchOrders({ customerId: "c-1" }, { timeoutMs: 100 });
    await callOutcome(
      (async () => {
        for await (const _ of stream) break;
      })(),
    );
    expect(seen).toEqual([{ method: "WatchOrders", key: null }]);
  });

  it("idempotency: mode caller-only sends only keys the caller supplies (context value or header)", async () => {
    const { client, seen } = await setup({ mode: "caller-only" });
    await client.createOrder(ORDER);
    await client.createOrder(ORDER, {
      contextValues: createContextValues().set(idempotencyKeyKey, "ctx-key-1"),
    });
    await client.createOrder(ORDER, { headers: { "idempotency-key": "header-key-1" } });
    expect(seen.map((s) => s.key)).toEqual([null, "ctx-key-1", "header-key-1"]);
  });

  it("idempotency: a caller-supplied key wins: header over context value over a generated key", async () => {
    const { client, seen } = await setup({ mode: "auto" });
    await client.createOrder(ORDER, {
      headers: { "idempotency-key": "from-header" },
      contextValues: createContextValues().set(idempotencyKeyKey, "from-context"),
    });
    await client.createOrder(ORDER, {
      contextValues: createContextValues().set(idempotencyKeyKey, "from-context"),
    });
    expect(seen.map((s) => s.key)).toEqual(["from-header", "from-context"]);
  });

  it("idempotency: mode { methods } keys only the listed methods", async () => {
    const { client, seen } = await setup({
      mode: { methods: ["/example.orders.v1.OrderService/CancelOrder"] },
    });
    await client.createOrder(ORDER);
    await callOutcome(client.cancelOrder({ id: "x" }));
    expect(seen[0]).toEqual({ method: "CreateOrder", key: null });
    expect(seen[1]?.key).toMatch(UUID_V4);
  });

  it("idempotency: the default key mode is auto", async () => {
    const { client, seen } = await setup({});
    await client.createOrder(ORDER);
    await callOutcome(client.getOrder({ id: "x" }));
    expect(seen[0]?.key).toMatch(UUID_V4);
    expect(seen[1]).toEqual({ method: "GetOrder", key: null });
  });

  it("idempotency: idempotencyKeys false sends no key", async () => {
    const { client, seen } = await setup(false);
    await client.createOrder(ORDER);
    expect(seen).toEqual([{ method: "CreateOrder", key: null }]);
  });

  it("idempotency: every attempt of one logical call carries the same key, so the handler runs once", async () => {
    // The transport's own retry loop; the server answers the first attempt
    // with UNAVAILABLE after its handler ran (a lost response).
    const { client, seen, stats } = await setup(
      { mode: "auto" },
      { serverIdempotency: true, retry: {}, serverInterceptors: [loseFirstResponse()] },
    );
    await client.createOrder(ORDER);
    expect(seen).toHaveLength(2);
    expect(seen[0]?.key).toMatch(UUID_V4);
    expect(seen[1]?.key).toBe(seen[0]?.key);
    expect(stats.executions).toBe(1);
  });

  it("idempotency: installed by hand (idempotencyKeys false), it keys every attempt alike too", async () => {
    const { client, seen, stats } = await setup(false, {
      clientInterceptors: [createIdempotencyKeyInterceptor({ mode: "auto" }), repeatAttempts],
      serverIdempotency: true,
    });
    await client.createOrder(ORDER);
    expect(seen).toHaveLength(2);
    expect(seen[0]?.key).toMatch(UUID_V4);
    expect(seen[1]?.key).toBe(seen[0]?.key);
    expect(stats.executions).toBe(1);
  });

  it.each([
    [{ mode: "always" }, RangeError],
    [{ mode: { methods: ["CreateOrder"] } }, RangeError],
    [{ mode: { methods: "x" } }, TypeError],
    [{ generateKey: "k" }, TypeError],
  ])("idempotency: rejects bad options %j at construction", (options, type) => {
    expect(() =>
      createIdempotencyKeyInterceptor(options as unknown as IdempotencyKeyInterceptorOptions),
    ).toThrow(type);
  });
});
