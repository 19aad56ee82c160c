import { describe, expect, it } from "vitest";
import { ADMIN_STATS_DEFAULTS, createAdminStats } from "../../src/admin/admin-stats.js";
import { createListenerSet } from "../../src/call/listener-set.js";
import type { TappedCall } from "../../src/call/tapped-call.js";
import { createMeshTap } from "../../src/call/tapped-call.js";

const T0 = 1_800_000_000_000;

function call(over: Partial<TappedCall> = {}): TappedCall {
  return {
    side: "client",
    method: "pkg.S/M",
    code: "OK",
    startedAt: T0,
    durationMs: 1,
    traceId: "0".repeat(32),
    header: {},
    ...over,
  };
}

describe("admin stats", () => {
  it("computes calls/s, success % and nearest-rank p50/p99 over the window", () => {
    const stats = createAdminStats({ windowMs: 10_000 });
    for (let i = 1; i <= 100; i++) {
      stats.recordCall(call({ durationMs: i, code: i <= 90 ? "OK" : "Unavailable" }), T0 + i * 10);
    }
    const [m] = stats.view(T0 + 2_000).methods;
    expect(m).toEqual({
      side: "client",
      method: "pkg.S/M",
      callsPerSec: 10,
      successPercent: 90,
      p50Ms: 50,
      p99Ms: 99,
      calls: 100,
      failures: 10,
    });
    // Past the window the rates empty; the totals stay.
    const [late] = stats.view(T0 + 20_000).methods;
    expect(late).toMatchObject({ callsPerSec: 0, successPercent: null, p50Ms: null, calls: 100 });
  });

  it("keeps client and server rows apart and counts only client calls in the charts", () => {
    const stats = createAdminStats();
    stats.recordCall(call({ endpoint: "a:1" }), T0);
    stats.recordCall(call({ endpoint: "b:1", code: "Internal" }), T0 + 10);
    stats.recordCall(call({ side: "server", peer: "c:9" }), T0 + 20);
    const v = stats.view(T0 + 100);
    expect(v.methods.map((m) => m.side)).toEqual(["client", "server"]);
    expect(v.history).toEqual([
      {
        at: T0,
        calls: 2,
        ok: 1,
        retries: 0,
        budgetExhausted: 0,
        endpoints: { "a:1": 1, "b:1": 1 },
      },
    ]);
  });

  it("bounds the history, the tap and the timeline whatever the traffic", () => {
    const stats = createAdminStats({ historySeconds: 5, tapSize: 3, timelineSize: 2 });
    for (let i = 0; i < 20; i++) {
      stats.recordCall(call({ traceId: String(i) }), T0 + i * 1_000);
      stats.recordEvent(
        { type: "breaker", key: `k${i}`, from: "closed", to: "open", reason: "x" },
        T0,
      );
    }
    const v = stats.view(T0 + 20_000);
    expect(v.history).toHaveLength(5);
    expect(v.history[0]?.at).toBe(T0 + 15_000);
    expect(stats.tail().map((c) => c.traceId)).toEqual(["17", "18", "19"]);
    expect(stats.tail(1).map((c) => c.traceId)).toEqual(["19"]);
    expect(v.timeline.map((e) => e.subject)).toEqual(["k18", "k19"]);
    expect(v.breakers).toHaveLength(20);
  });

  it("hands out the calls since a sequence number, at most the tap's size", () => {
    const stats = createAdminStats({ tapSize: 3 });
    expect(stats.callsSince(0)).toEqual({ calls: [], seq: 0 });
    stats.recordCall(call({ traceId: "a" }), T0);
    const first = stats.callsSince(0);
    expect(first.calls.map((c) => c.traceId)).toEqual(["a"]);
    for (const id of ["b", "c", "d", "e"]) stats.recordCall(call({ traceId: id }), T0);
    const next = stats.callsSince(first.seq);
    expect(next.seq).toBe(5);
    expect(next.calls.map((c) => c.traceId)).toEqual(["c", "d", "e"]);
    expect(stats.callsSince(next.seq).calls).toEqual([]);
  });

  it("follows breakers, ejections and restorations from events", () => {
    const stats = createAdminStats();
    const ejected = {
      source: "outlier",
      type: "ejected",
      target: "t",
      address: "a:1",
      reason: "consecutive-failures",
      at: 5,
      ejectionMs: 30_000,
      until: 30_005,
      ejectionCount: 1,
    };
    stats.recordEvent(ejected, T0);
    stats.recordEvent(
      { type: "breaker", key: "t pkg.S/M", from: "closed", to: "open", reason: "failure-rate" },
      T0 + 1,
    );
    let v = stats.view(T0 + 2);
    expect(v.ejections).toEqual([
      { target: "t", address: "a:1", reason: "consecutive-failures", since: T0, ejectionCount: 1 },
    ]);
    expect(v.breakers).toEqual([
      { key: "t pkg.S/M", state: "open", since: T0 + 1, reason: "failure-rate" },
    ]);
    expect(v.timeline.map((e) => [e.kind, e.subject, e.detail])).toEqual([
      ["ejected", "a:1", "consecutive-failures, ejection #1 for 30000 ms"],
      ["breaker", "t pkg.S/M", "closed → open (failure-rate)"],
    ]);
    stats.recordEvent({ source: "outlier", type: "restored", target: "t", address: "a:1" }, T0 + 3);
    stats.recordEvent(
      { type: "breaker", key: "t pkg.S/M", from: "open", to: "half-open", reason: "timeout" },
      T0 + 4,
    );
    v = stats.view(T0 + 5);
    expect(v.ejections).toEqual([]);
    expect(v.breakers[0]?.state).toBe("half-open");
    expect(v.timeline.map((e) => e.kind)).toEqual(["ejected", "breaker", "restored", "breaker"]);
  });

  it("counts retries, hedges, give-ups and budget refusals without flooding the timeline", () => {
    const stats = createAdminStats();
    const m = { target: "t", method: "pkg.S/M", code: 14 };
    stats.recordEvent({ type: "retry", ...m, attempt: 2, delayMs: 5, transparent: false }, T0);
    stats.recordEvent({ type: "retry", ...m, attempt: 3, delayMs: 5, transparent: false }, T0);
    stats.recordEvent({ type: "hedge", ...m, attempt: 2 }, T0);
    for (let i = 0; i < 50; i++) {
      stats.recordEvent({ type: "give-up", ...m, attempts: 1, reason: "breaker-open" }, T0);
      stats.recordEvent({ type: "budget-exhausted", ...m }, T0);
    }
    const v = stats.view(T0 + 10);
    expect(v.retries).toEqual({ retries: 2, hedges: 1, giveUps: 50, budgetExhausted: 50 });
    expect(v.history[0]).toMatchObject({ retries: 2, budgetExhausted: 50 });
    expect(v.timeline).toEqual([]);
  });

  it("ignores what is not an event and lists registration changes", () => {
    const stats = createAdminStats();
    stats.recordEvent(undefined, T0);
    stats.recordEvent("x", T0);
    stats.recordEvent(
      {
        type: "lease-lost",
        registration: { service: "svc", address: "a:1" },
        error: new Error("e"),
      },
      T0,
    );
    expect(stats.view(T0).timeline).toEqual([
      { at: T0, kind: "lease-lost", subject: "a:1", detail: "svc" },
    ]);
    expect(() => JSON.stringify(stats.view(T0))).not.toThrow();
  });

  it.each([
    [{ windowMs: 999 }, "windowMs 999"],
    [{ windowMs: 1.5e3 + 0.5 }, "windowMs 1500.5"],
    [{ historySeconds: 0 }, "historySeconds 0"],
    [{ tapSize: 10_001 }, "tapSize 10001"],
    [{ timelineSize: -1 }, "timelineSize -1"],
  ])("rejects %j", (options, message) => {
    expect(() => createAdminStats(options)).toThrow(RangeError);
    expect(() => createAdminStats(options)).toThrow(message);
  });

  it("documents its defaults", () => {
    expect(ADMIN_STATS_DEFAULTS).toEqual({
      windowMs: 10_000,
      historySeconds: 120,
      tapSize: 200,
      timelineSize: 200,
    });
  });
});

describe("tap listener sets", () => {
  it("are inactive without listeners, skip a throwing one and detach each listen once", () => {
    const set = createListenerSet<number>();
    expect(set.active).toBe(false);
    const seen: number[] = [];
    const bad = set.listen(() => {
      throw new Error("boom");
    });
    const good = (n: number) => seen.push(n);
    const off1 = set.listen(good);
    const off2 = set.listen(good);
    expect(set.active).toBe(true);
    set.emit(1);
    expect(seen).toEqual([1, 1]);
    off1();
    off1();
    set.emit(2);
    expect(seen).toEqual([1, 1, 2]);
    off2();
    bad();
    expect(set.active).toBe(false);
  });

  it("attach an observer's call and event listeners together and detach them together", () => {
    const tap = createMeshTap<string>();
    const got: string[] = [];
    const off = tap.tap({ onCall: (c) => got.push(c.traceId), onEvent: (e) => got.push(e) });
    expect(tap.calls.active && tap.events.active).toBe(true);
    tap.calls.emit(call({ traceId: "t1" }));
    tap.events.emit("e1");
    off();
    expect(tap.calls.active || tap.events.active).toBe(false);
    expect(got).toEqual(["t1", "e1"]);
    expect(() => tap.tap(null as never)).toThrow(TypeError);
  });
});
