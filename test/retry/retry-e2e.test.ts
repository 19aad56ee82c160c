import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshTransport,
  type MeshTransportEvent,
  type MeshTransportOptions,
  meshCallKey,
} from "../../src/index.js";
import { OrderService, type Script, startScriptedOrders } from "../support/scripted-orders.js";

/** failure awaits a call that must fail and returns its ConnectError. */
async function failure(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded; it was expected to fail");
}

const unavailableFirst =
  (failures: number): Script =>
  (_m, n) =>
    n <= failures ? { code: Code.Unavailable } : { ok: true };

describe("retry end to end with real servers", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function setup(script: Script, options: Partial<MeshTransportOptions> = {}) {
    const s = await startScriptedOrders("s1", script);
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: s.address,
      onEvent: (e) => events.push(e),
      ...options,
    });
    cleanups.push(
      () => s.server.close({ graceMs: 0 }),
      () => transport.close(),
    );
    return { ...s, events, orders: createClient(OrderService, transport) };
  }

  it("retries transient UNAVAILABLE of a NO_SIDE_EFFECTS method to success", async () => {
    const { orders, arrivals, events } = await setup(unavailableFirst(2));
    const res = await orders.getOrder({ id: "o1" }, { timeoutMs: 5_000 });
    expect(res.order?.id).toBe("o1");
    expect(arrivals).toHaveLength(3);
    expect(arrivals.map((a) => a.previousAttempts)).toEqual([null, "1", "2"]);
    expect(events.filter((e) => e.type === "retry")).toHaveLength(2);
  });

  it("retries an IDEMPOTENT method", async () => {
    const { orders, arrivals } = await setup(unavailableFirst(1));
    await orders.cancelOrder({ id: "o1" }, { timeoutMs: 5_000 });
    expect(arrivals).toHaveLength(2);
  });

  it("never retries a side-effecting call without an idempotency key once it reached a server", async () => {
    // Automatic keys are on by default; turn them off to send a keyless call.
    const { orders, arrivals, events } = await setup(unavailableFirst(1), {
      idempotencyKeys: false,
    });
    await expect(
      orders.createOrder({ customerId: "c" }, { timeoutMs: 5_000 }),
    ).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    expect(arrivals).toHaveLength(1);
    expect(events).toContainEqual(expect.objectContaining({ type: "give-up", reason: "unsafe" }));
  });

  it("retries a side-effecting call that carries an idempotency key, with the same key", async () => {
    const { orders, arrivals } = await setup(unavailableFirst(2));
    await orders.createOrder(
      { customerId: "c" },
      { timeoutMs: 5_000, headers: { "idempotency-key": "k-123" } },
    );
    expect(arrivals.map((a) => a.idempotencyKey)).toEqual(["k-123", "k-123", "k-123"]);
  });

  it("does not retry codes outside retryableCodes (NOT_FOUND)", async () => {
    const { orders, arrivals } = await setup(() => ({ code: Code.NotFound }));
    await expect(orders.getOrder({ id: "x" })).rejects.toMatchObject({ code: Code.NotFound });
    expect(arrivals).toHaveLength(1);
  });

  it("stops at maxAttempts (default 3) and fails with the last error", async () => {
    const { orders, arrivals } = await setup(() => ({ code: Code.Unavailable }));
    const err = await failure(orders.getOrder({ id: "x" }, { timeoutMs: 5_000 }));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("#3");
    expect(arrivals).toHaveLength(3);
  });

  it("caps maxAttempts at 5 unless the cap is raised", async () => {
    const a = await setup(() => ({ code: Code.Unavailable }), {
      retry: { maxAttempts: 9, initialBackoffMs: 1 },
    });
    await a.orders.getOrder({ id: "x" }, { timeoutMs: 5_000 }).catch(() => {});
    expect(a.arrivals).toHaveLength(5);
    const b = await setup(() => ({ code: Code.Unavailable }), {
      retry: { maxAttempts: 7, maxAttemptsCap: 7, initialBackoffMs: 1 },
    });
    await b.orders.getOrder({ id: "x" }, { timeoutMs: 5_000 }).catch(() => {});
    expect(b.arrivals).toHaveLength(7);
  });

  it("sends every attempt a grpc-timeout within the time left, and starts none after the deadline", async () => {
    let deadline = Number.NaN;
    // The transport's clock is performance.now(), shared with the server in this process.
    const spy: Interceptor = (next) => (req) => {
      deadline = req.contextValues.get(meshCallKey)?.deadlineAt ?? Number.NaN;
      return next(req);
    };
    const retriesAt: { at: number; delayMs: number }[] = [];
    const { orders, arrivals } = await setup(() => ({ code: Code.Unavailable, delayMs: 60 }), {
      retry: { maxAttempts: 5, initialBackoffMs: 40, maxBackoffMs: 80 },
      interceptors: [spy],
      onEvent: (e) => {
        if (e.type === "retry") retriesAt.push({ at: performance.now(), delayMs: e.delayMs });
      },
    });
    const err = await failure(orders.getOrder({ id: "x" }, { timeoutMs: 400 }));
    expect([Code.Unavailable, Code.DeadlineExceeded]).toContain(err.code);
    expect(arrivals.length).toBeGreaterThanOrEqual(2);
    // Client side, exact: every retry was scheduled to start before the
    // deadline with at least minAttemptMs (5 ms) left.
    for (const r of retriesAt) {
      expect(r.at + r.delayMs + 5).toBeLessThanOrEqual(deadline);
    }
    // Server side: grpc-timeout is relative to when the attempt was sent, and
    // the handler runs a little later (transit, parsing; more on a loaded
    // machine), so allow that much slack.
    for (const a of arrivals) {
      expect(a.at).toBeLessThan(deadline + 50);
      expect(a.at + (a.timeoutMs ?? Number.POSITIVE_INFINITY)).toBeLessThanOrEqual(deadline + 50);
    }
    for (let i = 1; i < arrivals.length; i++) {
      expect(arrivals[i]?.timeoutMs).toBeLessThan(arrivals[i - 1]?.timeoutMs ?? 0);
    }
  });

  it("gives up at once when the backoff would end past the deadline", async () => {
    const { orders, arrivals, events } = await setup(() => ({ code: Code.Unavailable }), {
      retry: { initialBackoffMs: 5_000, maxBackoffMs: 5_000 },
      // Full jitter with random() = 1 makes the backoff exactly 5 s.
    });
    const started = performance.now();
    await orders.getOrder({ id: "x" }, { timeoutMs: 300 }).catch(() => {});
    // Either the jittered wait fit and a second attempt came, or it gave up early: never a sleep past the deadline.
    // Generous on a busy host, far below the 5 s backoff it must not sleep.
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(arrivals.length).toBeLessThanOrEqual(2);
    if (arrivals.length === 1) {
      expect(events).toContainEqual(
        expect.objectContaining({ type: "give-up", reason: "deadline" }),
      );
    }
  });

  it("honours grpc-retry-pushback-ms from the server, retrying RESOURCE_EXHAUSTED only with it", async () => {
    const { orders, arrivals } = await setup((_m, n) =>
      n === 1
        ? { code: Code.ResourceExhausted, trailers: { "grpc-retry-pushback-ms": "200" } }
        : { ok: true },
    );
    await orders.getOrder({ id: "x" }, { timeoutMs: 5_000 });
    expect(arrivals).toHaveLength(2);
    expect((arrivals[1]?.at ?? 0) - (arrivals[0]?.at ?? 0)).toBeGreaterThanOrEqual(195);
  });

  it("does not retry RESOURCE_EXHAUSTED without pushback, nor with a negative pushback", async () => {
    const a = await setup(() => ({ code: Code.ResourceExhausted }));
    await a.orders.getOrder({ id: "x" }).catch(() => {});
    expect(a.arrivals).toHaveLength(1);
    const b = await setup(() => ({
      code: Code.Unavailable,
      trailers: { "grpc-retry-pushback-ms": "-1" },
    }));
    await b.orders.getOrder({ id: "x" }).catch(() => {});
    expect(b.arrivals).toHaveLength(1);
    expect(b.events).toContainEqual(
      expect.objectContaining({ type: "give-up", reason: "pushback" }),
    );
  });

  it("a retry budget caps retries across calls and reports exhaustion", async () => {
    const { orders, arrivals, events } = await setup(() => ({ code: Code.Unavailable }), {
      retry: { initialBackoffMs: 1, budget: { ratio: 0.1, minRetriesPerSecond: 0 } },
      // Every call fails: the breaker would open and take over from the budget.
      circuitBreaker: false,
    });
    for (let i = 0; i < 20; i++) {
      await orders.getOrder({ id: `x${i}` }, { timeoutMs: 2_000 }).catch(() => {});
    }
    const retries = arrivals.length - 20;
    expect(retries).toBeLessThanOrEqual(2);
    expect(events.filter((e) => e.type === "budget-exhausted").length).toBeGreaterThan(10);
  });

  it("a per-attempt timeout ends a hung attempt and retries within the call's deadline", async () => {
    const { orders, arrivals } = await setup(
      (_m, n) => (n === 1 ? { ok: true, delayMs: 5_000 } : { ok: true }),
      {
        retry: { perAttemptTimeoutMs: 150 },
      },
    );
    // Succeeds: without the per-attempt timeout the 5 s first attempt would outlive the 3 s deadline.
    await orders.getOrder({ id: "x" }, { timeoutMs: 3_000 });
    expect(arrivals).toHaveLength(2);
    expect(arrivals[0]?.timeoutMs).toBeLessThanOrEqual(150);
  });

  it("retries a server stream that fails before its first message, not after", async () => {
    const a = await setup(
      (m, n) => (m === "WatchOrders" && n === 1 ? { code: Code.Unavailable } : { ok: true }),
      {
        retry: { retryable: true },
      },
    );
    const got: string[] = [];
    for await (const r of a.orders.watchOrders({ customerId: "c" }, { timeoutMs: 5_000 }))
      got.push(r.order?.id ?? "");
    expect(got).toEqual(["c-1", "c-2"]);
    expect(a.arrivals).toHaveLength(2);

    const b = await setup(
      (m) => (m === "WatchOrders.after" ? { code: Code.Unavailable } : { ok: true }),
      {
        retry: { retryable: true },
      },
    );
    const seen: string[] = [];
    const err = await (async () => {
      for await (const r of b.orders.watchOrders({ customerId: "d" }, { timeoutMs: 5_000 }))
        seen.push(r.order?.id ?? "");
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect(seen).toEqual(["d-1"]);
    expect(b.arrivals).toHaveLength(1);
  });

  it("transparently retries a side-effecting call refused by a dead endpoint on another endpoint", async () => {
    const live = await startScriptedOrders("live", () => ({ ok: true }));
    cleanups.push(() => live.server.close({ graceMs: 0 }));
    const transport = createMeshTransport({
      target: `static:///127.0.0.1:1,${live.address}`,
      policy: "pick-first",
    });
    cleanups.push(() => transport.close());
    const res = await createClient(OrderService, transport).createOrder(
      { customerId: "c" },
      { timeoutMs: 3_000 },
    );
    expect(res.order?.servedBy).toBe("live");
    expect(live.arrivals).toHaveLength(1);
  });

  it("hedges a NO_SIDE_EFFECTS call: a slow replica loses to a hedge on another, first answer wins", async () => {
    const slow = await startScriptedOrders("slow", () => ({ ok: true, delayMs: 1_000 }));
    const fast = await startScriptedOrders("fast", () => ({ ok: true }));
    cleanups.push(
      () => slow.server.close({ graceMs: 0 }),
      () => fast.server.close({ graceMs: 0 }),
    );
    const transport = createMeshTransport({
      target: `static:///${slow.address},${fast.address}`,
      policy: "pick-first",
      retry: { hedging: { delayMs: 50 } },
    });
    cleanups.push(() => transport.close());
    const res = await createClient(OrderService, transport).getOrder(
      { id: "h" },
      { timeoutMs: 3_000 },
    );
    expect(res.order?.servedBy).toBe("fast");
    expect(slow.arrivals).toHaveLength(1);
    expect(fast.arrivals).toHaveLength(1);
  });

  it("validates retry options when the transport is built", () => {
    expect(() =>
      createMeshTransport({ target: "127.0.0.1:5000", retry: { maxAttempts: 0 } }),
    ).toThrow(/maxAttempts 0/);
    expect(() =>
      createMeshTransport({
        target: "127.0.0.1:5000",
        retry: { methods: { "a.B/C": { perAttemptTimeoutMs: -1 } } },
      }),
    ).toThrow(/retry.methods\["a.B\/C"\].perAttemptTimeoutMs -1/);
    expect(() =>
      createMeshTransport({ target: "127.0.0.1:5000", retry: { hedging: { delayMs: -5 } } }),
    ).toThrow(/hedging.delayMs -5/);
  });
});
