import { Code, ConnectError, createClient, createContextValues } from "@connectrpc/connect";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import {
  BreakerOpenError,
  createMeshTransport,
  type MeshTransportEvent,
  type MeshTransportOptions,
  meshCallKey,
} from "../../src/index.js";
import { OrderService, startScriptedOrders } from "../support/scripted-orders.js";

describe("circuit breaker end to end with a real server", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /**
   * withOpenBreaker serves OrderService failing every call with UNAVAILABLE,
   * builds a transport with `options` and a breaker that opens after 3 calls
   * (open 10 s), and fails calls until it has opened.
   */
  async function withOpenBreaker(options: Partial<MeshTransportOptions>) {
    const s = await startScriptedOrders("s", () => ({ code: Code.Unavailable }));
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: s.address,
      outlierDetection: false,
      circuitBreaker: { minimumCalls: 3, openMs: 10_000 },
      onEvent: (e) => events.push(e),
      ...options,
    });
    cleanups.push(
      () => transport.close(),
      () => s.server.close({ graceMs: 0 }),
    );
    const orders = createClient(OrderService, transport);
    for (let i = 0; i < 10 && !events.some((e) => e.type === "breaker"); i++) {
      await orders.getOrder({ id: "x" }, { timeoutMs: 2_000 }).catch(() => {});
    }
    expect(events).toContainEqual(expect.objectContaining({ type: "breaker", to: "open" }));
    return { server: s, events, orders };
  }

  it("opens on failures, fails fast without a network call, half-opens with K probes, then closes", async () => {
    let healthy = false;
    const s = await startScriptedOrders("s", () =>
      healthy ? { ok: true } : { code: Code.Unavailable },
    );
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: s.address,
      retry: false,
      outlierDetection: false,
      circuitBreaker: {
        minimumCalls: 5,
        failureRateThreshold: 0.5,
        openMs: 300,
        halfOpenProbes: 2,
      },
      onEvent: (e) => events.push(e),
    });
    cleanups.push(
      () => transport.close(),
      () => s.server.close({ graceMs: 0 }),
    );
    const orders = createClient(OrderService, transport);
    for (let i = 0; i < 5; i++) {
      await orders.getOrder({ id: "x" }).catch(() => {});
    }
    expect(s.arrivals).toHaveLength(5);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "breaker", from: "closed", to: "open" }),
    );

    // Open: fail fast, naming the breaker and when it probes; the server sees nothing.
    // Fail fast: the server sees nothing (arrivals below); the cost of a refusal is in the breakers bench.
    const err = await orders.getOrder({ id: "x" }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect((err as ConnectError).rawMessage).toMatch(
      /circuit breaker ".*OrderService\/GetOrder" is open; next probe in \d+ ms/,
    );
    expect(s.arrivals).toHaveLength(5);

    // After openMs, K = 2 probes are admitted; while they are out, others fail fast.
    healthy = true;
    await new Promise((r) => setTimeout(r, 350));
    const probes = [orders.getOrder({ id: "p1" }), orders.getOrder({ id: "p2" })];
    const third = await orders.getOrder({ id: "p3" }).catch((e: unknown) => ConnectError.from(e));
    expect(third).toMatchObject({ code: Code.Unavailable });
    await Promise.all(probes);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "breaker", from: "open", to: "half-open" }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({ type: "breaker", from: "half-open", to: "closed" }),
    );
    await orders.getOrder({ id: "after" });
    expect(s.arrivals.map((a) => a.method)).toHaveLength(8);
  });

  it("does not count caller errors (NOT_FOUND, INVALID_ARGUMENT) as breaker failures", async () => {
    const s = await startScriptedOrders("s", (_m, n) => ({
      code: n % 2 ? Code.NotFound : Code.InvalidArgument,
    }));
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: s.address,
      circuitBreaker: { minimumCalls: 5 },
      onEvent: (e) => events.push(e),
    });
    cleanups.push(
      () => transport.close(),
      () => s.server.close({ graceMs: 0 }),
    );
    const orders = createClient(OrderService, transport);
    for (let i = 0; i < 30; i++) await orders.getOrder({ id: "x" }).catch(() => {});
    expect(s.arrivals).toHaveLength(30);
    expect(events.filter((e) => e.type === "breaker")).toEqual([]);
  });

  it("one endpoint's refused connections eject that endpoint but do not open the method breaker", async () => {
    const live = await startScriptedOrders("live", () => ({ ok: true }));
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: `static:///127.0.0.1:1,${live.address}`,
      // The dead endpoint takes every call until ejected: 15 failures in a row,
      // more than the breaker's 10 consecutive failures.
      policy: "pick-first",
      outlierDetection: { consecutiveFailures: 15 },
      retry: false,
      onEvent: (e) => events.push(e),
    });
    cleanups.push(
      () => transport.close(),
      () => live.server.close({ graceMs: 0 }),
    );
    const orders = createClient(OrderService, transport);
    let failed = 0;
    for (let i = 0; i < 40; i++) {
      await orders.getOrder({ id: "x" }, { timeoutMs: 2_000 }).catch(() => failed++);
    }
    expect(failed).toBe(15);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "ejected", address: "127.0.0.1:1" }),
    );
    expect(events.filter((e) => e.type === "breaker")).toEqual([]);
    // After the ejection every call reaches the live endpoint.
    await orders.getOrder({ id: "y" });
  });

  it("a retry is not burned on an open breaker", async () => {
    const {
      server: s,
      events,
      orders,
    } = await withOpenBreaker({
      retry: { initialBackoffMs: 1 },
    });
    const before = s.arrivals.length;
    await orders.getOrder({ id: "x" }).catch(() => {});
    expect(s.arrivals.length).toBe(before);
    expect(events.at(-1)).toMatchObject({ type: "give-up", reason: "breaker-open", attempts: 1 });
  });

  it("a call refused by an open breaker builds no attempt: no endpoint picked, no attempt log line, breaker state logged", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: "debug" },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    const { orders } = await withOpenBreaker({ retry: { initialBackoffMs: 1 }, logger });
    lines.length = 0;
    const contextValues = createContextValues();
    const err = await orders.getOrder({ id: "x" }, { contextValues }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err).toMatchObject({ code: Code.Unavailable });
    expect(err?.cause).toBeInstanceOf(BreakerOpenError);
    const call = contextValues.get(meshCallKey);
    expect(call).toMatchObject({ attempt: 1, endpoint: undefined });
    // One line for the logical call (and the retry give-up at debug), none
    // for an attempt that was never built.
    expect(lines.map((l) => l.msg)).toEqual(["retry give-up", "finished call"]);
    expect(lines[0]).toMatchObject({ reason: "breaker-open", attempts: 1 });
    expect(lines[1]).toMatchObject({
      msg: "finished call",
      "grpc.code": "Unavailable",
      "breaker.state": "open",
      "grpc.attempts": 1,
    });
  });

  it("a hedged call refused by an open breaker fails fast: no hedge is launched and no retry budget is spent", async () => {
    // GetOrder is NO_SIDE_EFFECTS: hedged.
    const {
      server: s,
      events,
      orders,
    } = await withOpenBreaker({
      retry: { hedging: { delayMs: 5 } },
    });
    const arrivals = s.arrivals.length;
    events.length = 0;
    const started = performance.now();
    const err = await orders.getOrder({ id: "x" }, { timeoutMs: 2_000 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    // Far below the 2 s deadline: refused at once, not after hedges or waits.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(err?.cause).toBeInstanceOf(BreakerOpenError);
    expect(s.arrivals.length).toBe(arrivals);
    expect(events.filter((e) => e.type === "hedge" || e.type === "budget-exhausted")).toEqual([]);
  });
});
