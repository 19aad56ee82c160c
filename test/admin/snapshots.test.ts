import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type ServerSnapshot,
  type TransportSnapshot,
} from "../../src/index.js";
import { OrderService, startScriptedOrders } from "../support/scripted-orders.js";

const GET_ORDER = "example.orders.v1.OrderService/GetOrder";
const CREATE_ORDER = "example.orders.v1.OrderService/CreateOrder";

/** expectPlainData checks a snapshot is frozen all the way down and survives JSON unchanged. */
function expectPlainData(snapshot: TransportSnapshot | ServerSnapshot): void {
  expect(JSON.parse(JSON.stringify(snapshot))).toStrictEqual(snapshot);
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== "object") return;
    expect(Object.isFrozen(v)).toBe(true);
    for (const child of Object.values(v)) walk(child);
  };
  walk(snapshot);
}

describe("state snapshots through the public API", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("lists the endpoints and shows the failing one ejected, with its history, and retries paid from the budget", async () => {
    const good1 = await startScriptedOrders("good1", () => ({ ok: true }));
    const good2 = await startScriptedOrders("good2", () => ({ ok: true }));
    const bad = await startScriptedOrders("bad", () => ({ code: Code.Unavailable }));
    for (const s of [good1, good2, bad]) cleanups.push(() => s.server.close({ graceMs: 0 }));
    const transport = createMeshTransport({
      target: `static:///${good1.address},${good2.address},${bad.address}`,
      logger: false,
      // Round robin sends the bad replica a third of the calls until it is ejected.
      policy: "round-robin",
      outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 120_000, successRate: false },
      circuitBreaker: false,
      retry: { maxAttempts: 3, budget: { ratio: 0, minRetriesPerSecond: 5, ttlMs: 10_000 } },
    });
    cleanups.push(() => transport.close());
    const before = transport.snapshot();
    expect(before.kind).toBe("transport");
    expect(before.retry?.budget?.available).toBe(50);

    const orders = createClient(OrderService, transport);
    let failures = 0;
    await expect
      .poll(
        async () => {
          await orders.getOrder({ id: "x" }, { timeoutMs: 5_000 }).catch(() => failures++);
          return transport.snapshot().endpoints.find((e) => e.address === bad.address)?.status;
        },
        { timeout: 20_000, interval: 1 },
      )
      .toBe("ejected");
    // Every call succeeded: each failed attempt on the bad replica was retried elsewhere.
    expect(failures).toBe(0);
    for (let i = 0; i < 10; i++) await orders.getOrder({ id: "y" }, { timeoutMs: 5_000 });

    const snap = transport.snapshot();
    expectPlainData(snap);
    expect(snap.target).toContain(bad.address);
    expect(snap.policy).toBe("round-robin");
    expect(snap.resolver).toMatchObject({ resolved: true, staleSince: null, lastError: null });
    expect(snap.endpoints.map((e) => e.address)).toEqual([
      good1.address,
      good2.address,
      bad.address,
    ]);
    const ejected = snap.endpoints.find((e) => e.address === bad.address)!;
    expect(ejected.ejection).toMatchObject({ state: "ejected", ejectionCount: 1 });
    expect(ejected.ejection?.until).toBeGreaterThan(snap.takenAt);
    expect(ejected.ejection?.history).toEqual([
      expect.objectContaining({
        type: "ejected",
        reason: "consecutive-failures",
        ejectionMs: 120_000,
      }),
    ]);
    expect(ejected.calls.failed).toBeGreaterThanOrEqual(3);
    expect(ejected.calls.succeeded).toBe(0);
    for (const address of [good1.address, good2.address]) {
      const e = snap.endpoints.find((x) => x.address === address)!;
      expect(e).toMatchObject({ status: "ready", pending: 0 });
      // "idle" is an open session with no stream at the moment.
      expect(["open", "idle"]).toContain(e.connection);
      expect(e.ejection).toMatchObject({ state: "healthy", history: [] });
      expect(e.calls.succeeded).toBeGreaterThan(0);
      expect(e.calls.failed).toBe(0);
    }
    // Shares of the picks counted add up to one; the good replicas took the most.
    const shares = snap.endpoints.map((e) => e.pickShare);
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    expect(snap.endpoints.reduce((a, e) => a + e.picks, 0)).toBe(snap.picks.counted);
    expect(ejected.pickShare).toBeLessThan(0.5);
    // Logical calls: none failed; the retries show in the retry counters and the budget.
    expect(snap.calls.failed).toBe(0);
    expect(snap.calls.succeeded).toBe(snap.calls.started);
    expect(snap.methods).toEqual([
      expect.objectContaining({ method: GET_ORDER, started: snap.calls.started, inFlight: 0 }),
    ]);
    const retries = snap.retry?.retries ?? 0;
    expect(retries).toBeGreaterThanOrEqual(3);
    expect(snap.retry?.budget).toMatchObject({
      withdrawn: retries,
      available: 50 - retries,
      ratio: 0,
      ttlMs: 10_000,
    });
    expect(snap.retry?.hedging).toBeNull();
    expect(snap.breakers).toEqual([]);
  });

  it("shows a breaker open with its next probe time and transition history", async () => {
    const s = await startScriptedOrders("down", () => ({ code: Code.Unavailable }));
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const transport = createMeshTransport({
      target: s.address,
      logger: false,
      retry: false,
      outlierDetection: false,
      circuitBreaker: { minimumCalls: 4, openMs: 60_000 },
    });
    cleanups.push(() => transport.close());
    const orders = createClient(OrderService, transport);
    expect(transport.snapshot().breakers).toEqual([]);
    for (let i = 0; i < 4; i++) await orders.getOrder({ id: "x" }).catch(() => {});
    const refused = await orders.getOrder({ id: "x" }).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);

    const snap = transport.snapshot();
    expectPlainData(snap);
    expect(snap.retry).toBeNull();
    expect(snap.breakers).toHaveLength(1);
    const breaker = snap.breakers[0]!;
    expect(breaker).toMatchObject({
      key: `${s.address} example.orders.v1.OrderService/GetOrder`,
      state: "open",
      openCount: 1,
      probesInFlight: 0,
    });
    expect(breaker.nextProbeAt).toBeGreaterThan(snap.takenAt);
    expect(breaker.history).toEqual([
      expect.objectContaining({ from: "closed", to: "open", reason: "failure-rate" }),
    ]);
    // The refused call never reached the server; the four before it did.
    expect(s.arrivals).toHaveLength(4);
    expect(snap.calls).toMatchObject({ started: 5, failed: 5, succeeded: 0, inFlight: 0 });
    expect(snap.endpoints[0]?.calls).toMatchObject({ started: 4, failed: 4 });
  });

  it("shows a server's services, in-flight calls per method, limit, idempotency and counts", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let arrived = 0;
    const impl: Partial<ServiceImpl<typeof OrderService>> = {
      async getOrder(req) {
        arrived++;
        await gate;
        return { order: { id: req.id, servedBy: "s" } };
      },
      async createOrder(req) {
        return { order: { id: `new-${req.customerId}`, servedBy: "s" } };
      },
    };
    const server: MeshServer = createMeshServer({
      logger: false,
      routes: (r) => r.service(OrderService, impl),
      concurrencyLimit: { maxInFlight: { [GET_ORDER]: 8 } },
    });
    const fresh = server.snapshot();
    expect(fresh).toMatchObject({ state: "new", address: null, health: "NOT_SERVING" });
    const { address } = await server.listen();
    cleanups.push(() => server.close({ graceMs: 0 }));
    const transport = createMeshTransport({ target: address, logger: false });
    cleanups.push(() => transport.close());
    const orders = createClient(OrderService, transport);

    const pending = [1, 2, 3].map((i) => orders.getOrder({ id: `o${i}` }, { timeoutMs: 20_000 }));
    // Should an assertion fail before they are awaited, closing must not reject them unhandled.
    for (const p of pending) p.catch(() => {});
    await expect.poll(() => arrived, { timeout: 10_000 }).toBe(3);
    const busy = server.snapshot();
    expectPlainData(busy);
    expect(busy).toMatchObject({ state: "serving", address, health: "SERVING", connections: 1 });
    expect(busy.url).toBe(`http://${address}`);
    expect(busy.services).toContainEqual({
      name: "example.orders.v1.OrderService",
      health: "SERVING",
    });
    expect(busy.inFlight).toBeGreaterThanOrEqual(3);
    expect(busy.methods).toContainEqual(
      expect.objectContaining({ method: GET_ORDER, inFlight: 3, started: 3, limit: 8 }),
    );
    expect(busy.concurrencyLimit).toEqual({ maxInFlight: { [GET_ORDER]: 8 }, pushbackMs: 50 });
    expect(transport.snapshot().endpoints[0]?.pending).toBe(3);

    release();
    await Promise.all(pending);
    // The mesh client keys CreateOrder (it has side effects): the server stores its outcome.
    await orders.createOrder({ customerId: "c1" });
    await expect
      .poll(() => server.snapshot().methods.find((m) => m.method === GET_ORDER)?.inFlight)
      .toBe(0);
    const idle = server.snapshot();
    expectPlainData(idle);
    expect(idle.methods).toContainEqual(
      expect.objectContaining({ method: GET_ORDER, started: 3, succeeded: 3, failed: 0 }),
    );
    expect(idle.methods).toContainEqual(
      expect.objectContaining({ method: CREATE_ORDER, succeeded: 1, limit: null }),
    );
    expect(idle.calls.succeeded).toBeGreaterThanOrEqual(4);
    expect(idle.idempotency).toMatchObject({
      store: "memory",
      records: { completed: 1, inProgress: 0 },
      events: { claimed: 1, completed: 1 },
    });
    expect(idle.registration).toBeNull();
  });
});
