// Idempotency as mesh servers and transports wire it by default: the
// transport keys every call to a method with side effects ("auto") and
// retries keyed calls on UNAVAILABLE (and on ABORTED with pushback); the
// server de-duplicates keyed calls in memory. No test here turns any of it off.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { IdempotencyEvent } from "../../src/idempotency/events.js";
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_REPLAYED_HEADER,
} from "../../src/idempotency/idempotency-key.js";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServerOptions,
  type MeshTransportEvent,
} from "../../src/index.js";
import {
  countingOrderService,
  createOrderStats,
  keyed,
  ORDER,
  OrderService,
  type OrderStats,
} from "./order-fixture.js";

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** pair starts a mesh server and a mesh transport to it, defaults unless `server` adds options. */
async function pair(
  stats: OrderStats,
  server: Omit<MeshServerOptions, "routes"> = {},
  onTransportEvent?: (e: MeshTransportEvent) => void,
) {
  const s = createMeshServer({
    ...server,
    routes: (r) => r.service(OrderService, countingOrderService("r1", stats)),
  });
  const bound = await s.listen();
  const transport = createMeshTransport({
    target: bound.address,
    ...(onTransportEvent === undefined ? {} : { onEvent: onTransportEvent }),
  });
  cleanups.push(async () => {
    await transport.close();
    await s.close({ graceMs: 0 });
  });
  return { client: createClient(OrderService, transport) };
}

/**
 * loseFirstResponse is a server interceptor (user slot, outside the
 * idempotency slot) that lets the first call's handler run and complete, then
 * answers UNAVAILABLE as if the response had been lost on the way. It records
 * the key every arrival carries.
 */
function loseFirstResponse(keys: (string | null)[]): Interceptor {
  return (next) => async (req) => {
    keys.push(req.header.get(IDEMPOTENCY_KEY_HEADER));
    const res = await next(req);
    if (keys.length === 1) throw new ConnectError("response lost", Code.Unavailable);
    return res;
  };
}

/** watch returns call options recording the response headers and trailers, and what they saw. */
function watch() {
  const seen: { header?: Headers; trailer?: Headers } = {};
  return {
    seen,
    options: {
      onHeader: (h: Headers) => {
        seen.header = h;
      },
      onTrailer: (t: Headers) => {
        seen.trailer = t;
      },
    },
  };
}

describe("idempotency through the default mesh transport and server", () => {
  it("idempotency: a retried CreateOrder through default mesh transport and server runs the handler once", async () => {
    const stats = createOrderStats();
    const arrivals: (string | null)[] = [];
    const { client } = await pair(stats, { interceptors: [loseFirstResponse(arrivals)] });
    const seen = watch();
    const r = await client.createOrder(ORDER, seen.options);
    expect(r.order?.customerId).toBe("c-1");
    // Two arrivals, one generated key on both, one handler run.
    expect(arrivals).toHaveLength(2);
    expect(arrivals[0]).toMatch(UUID_V4);
    expect(arrivals[1]).toBe(arrivals[0]);
    expect(stats.executions).toBe(1);
    expect(stats.keysSeen).toEqual([arrivals[0]]);
    // The answer is the stored outcome of the first run.
    expect(seen.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
    expect(seen.seen.header?.get("x-order-served-by")).toBe("r1");
    expect(seen.seen.trailer?.get("x-order-trailer")).toBe("t-r1");
  });

  it("idempotency: separate logical calls get separate keys and each runs the handler", async () => {
    const stats = createOrderStats();
    const { client } = await pair(stats);
    const r1 = await client.createOrder(ORDER);
    const r2 = await client.createOrder(ORDER);
    expect(r2.order?.id).not.toBe(r1.order?.id);
    expect(stats.executions).toBe(2);
    expect(stats.keysSeen[0]).toMatch(UUID_V4);
    expect(stats.keysSeen[1]).toMatch(UUID_V4);
    expect(stats.keysSeen[1]).not.toBe(stats.keysSeen[0]);
  });

  it("idempotency: a transient UNAVAILABLE from the handler is retried with the same key and, the claim released, runs the handler again", async () => {
    const stats = createOrderStats();
    stats.failWith.push(new ConnectError("try again", Code.Unavailable));
    const events: IdempotencyEvent[] = [];
    const transportEvents: MeshTransportEvent[] = [];
    const { client } = await pair(
      stats,
      { onEvent: (e) => events.push(e as IdempotencyEvent) },
      (e) => transportEvents.push(e),
    );
    const seen = watch();
    const r = await client.createOrder(ORDER, seen.options);
    expect(r.order?.customerId).toBe("c-1");
    expect(seen.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
    expect(stats.executions).toBe(2);
    expect(stats.keysSeen).toHaveLength(2);
    expect(stats.keysSeen[0]).toMatch(UUID_V4);
    expect(stats.keysSeen[1]).toBe(stats.keysSeen[0]);
    expect(events.map((e) => e.type)).toEqual(["claimed", "released", "claimed", "completed"]);
    expect(transportEvents.filter((e) => e.type === "retry")).toMatchObject([
      { type: "retry", attempt: 2, code: Code.Unavailable },
    ]);
  });

  it("idempotency: with onConcurrent abort, a duplicate in flight is retried after the pushback and gets the replay", async () => {
    const stats = createOrderStats();
    // The first call ends well within the retries' pushbacks (250 ms each).
    stats.delayMs = 200;
    const { client } = await pair(stats, {
      idempotency: { onConcurrent: "abort", retryPushbackMs: 250 },
    });
    const first = client.createOrder(ORDER, keyed("abort-retried").options);
    // The first call holds the key before the duplicate is sent.
    await expect.poll(() => stats.executions).toBe(1);
    const dup = keyed("abort-retried");
    const started = performance.now();
    const r2 = await client.createOrder(ORDER, dup.options);
    expect(performance.now() - started).toBeGreaterThanOrEqual(240);
    const r1 = await first;
    expect(r2).toEqual(r1);
    expect(dup.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
    expect(stats.executions).toBe(1);
  });

  it("idempotency: a method that requires a key is served: the transport supplies one", async () => {
    const stats = createOrderStats();
    const { client } = await pair(stats, {
      idempotency: {
        methods: { "example.orders.v1.OrderService/CreateOrder": { required: true } },
      },
    });
    const r = await client.createOrder(ORDER);
    expect(r.order?.customerId).toBe("c-1");
    expect(stats.executions).toBe(1);
    expect(stats.keysSeen[0]).toMatch(UUID_V4);
  });
});
