import { Code, createClient, createContextValues } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { createMeshTransport, type MeshTransportEvent, meshCallKey } from "../../src/index.js";
import { captureLogs } from "../observability/log-capture.js";
import { OrderService, startScriptedOrders } from "../support/scripted-orders.js";

describe("hedged attempts each carry their own Attempt", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function servers(names: readonly string[], slow: ReadonlySet<string>) {
    const started = [];
    for (const name of names) {
      const s = await startScriptedOrders(name, () =>
        slow.has(name) ? { ok: true, delayMs: 5_000 } : { ok: true },
      );
      cleanups.push(() => s.server.close({ graceMs: 0 }));
      started.push(s);
    }
    return started;
  }

  it("logs every hedge with its own number and endpoint, and each avoids the hedges before it", async () => {
    const [a, b, c] = await servers(["a", "b", "c"], new Set(["a", "b"]));
    if (a === undefined || b === undefined || c === undefined) throw new Error("no servers");
    const logs = captureLogs("debug");
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: `static:///${a.address},${b.address},${c.address}`,
      // pick-first sends attempt 1 to `a`: each later hedge gets elsewhere
      // only through its avoid list.
      policy: "pick-first",
      retry: { hedging: { delayMs: 30, maxAttempts: 3 } },
      logger: logs.logger,
      onEvent: (e) => events.push(e),
    });
    cleanups.push(() => transport.close());
    const contextValues = createContextValues();
    const res = await createClient(OrderService, transport).getOrder(
      { id: "h" },
      { timeoutMs: 4_000, contextValues },
    );
    expect(res.order?.servedBy).toBe("c");
    expect(
      events.filter((e) => e.type === "hedge").map((e) => "attempt" in e && e.attempt),
    ).toEqual([2, 3]);
    // The losing hedges settle (CANCELED) after the winner answered.
    await expect
      .poll(() => logs.lines().filter((l) => l.msg === "finished attempt").length)
      .toBe(3);
    const attempts = logs
      .lines()
      .filter((l) => l.msg === "finished attempt")
      .sort((x, y) => Number(x.attempt) - Number(y.attempt))
      .map((l) => ({
        attempt: l.attempt,
        endpoint: l.endpoint,
        avoid: l.avoid,
        code: l["grpc.code"],
      }));
    expect(attempts).toEqual([
      { attempt: 1, endpoint: a.address, avoid: undefined, code: "Canceled" },
      { attempt: 2, endpoint: b.address, avoid: [a.address], code: "Canceled" },
      { attempt: 3, endpoint: c.address, avoid: [a.address, b.address], code: "OK" },
    ]);
    // The call's own line and its MeshCall name the hedge that won.
    const [call] = logs.finished("client");
    expect(call).toMatchObject({ endpoint: c.address, "grpc.attempts": 3, "grpc.code": "OK" });
    expect(contextValues.get(meshCallKey)).toMatchObject({ attempt: 3, endpoint: c.address });
    expect(a.arrivals).toHaveLength(1);
    expect(b.arrivals).toHaveLength(1);
    expect(c.arrivals).toHaveLength(1);
  });

  it("names the endpoint of each sequential retry, the failed ones avoided", async () => {
    const bad = await startScriptedOrders("bad", () => ({ code: Code.Unavailable }));
    const good = await startScriptedOrders("good", () => ({ ok: true }));
    cleanups.push(
      () => bad.server.close({ graceMs: 0 }),
      () => good.server.close({ graceMs: 0 }),
    );
    const logs = captureLogs("debug");
    const transport = createMeshTransport({
      target: `static:///${bad.address},${good.address}`,
      policy: "pick-first",
      retry: { initialBackoffMs: 1, maxBackoffMs: 1 },
      outlierDetection: false,
      logger: logs.logger,
    });
    cleanups.push(() => transport.close());
    const res = await createClient(OrderService, transport).getOrder(
      { id: "r" },
      { timeoutMs: 4_000 },
    );
    expect(res.order?.servedBy).toBe("good");
    const attempts = logs
      .lines()
      .filter((l) => l.msg === "finished attempt")
      .map((l) => [l.attempt, l.endpoint, l.avoid, l["grpc.code"]]);
    expect(attempts).toEqual([
      [1, bad.address, undefined, "Unavailable"],
      [2, good.address, [bad.address], "OK"],
    ]);
    expect(logs.finished("client")[0]).toMatchObject({
      endpoint: good.address,
      "grpc.attempts": 2,
    });
  });
});
