import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createBreakerRegistry } from "../../src/breaker/breaker-registry.js";
import type { CircuitTransition } from "../../src/breaker/circuit-breaker.js";

const FAIL = { ok: false, code: Code.Unavailable, latencyMs: 1 } as const;

describe("breaker registry", () => {
  it("creates one breaker per key lazily and returns the same one after", () => {
    const r = createBreakerRegistry();
    expect(r.size).toBe(0);
    expect(r.peek("a")).toBeUndefined();
    const a = r.get("a", 0);
    expect(r.get("a", 1)).toBe(a);
    expect(r.get("b", 1)).not.toBe(a);
    expect(r.size).toBe(2);
    expect(r.peek("a")).toBe(a);
  });

  it("shares options across breakers and reports transitions with the key", () => {
    const events: [string, CircuitTransition][] = [];
    const r = createBreakerRegistry({
      breaker: { consecutiveFailures: 1, failureRateThreshold: 0 },
      onTransition: (key, t) => events.push([key, t]),
    });
    const p = r.tryAcquire("svc/a", 0);
    if (!p.admitted) throw new Error("expected admission");
    p.release(FAIL, 0);
    expect(r.tryAcquire("svc/a", 1)).toEqual({ admitted: false, state: "open", retryAtMs: 5_000 });
    expect(r.tryAcquire("svc/b", 1).admitted).toBe(true);
    expect(events.map(([k, t]) => `${k}:${t.to}`)).toEqual(["svc/a:open"]);
  });

  it("sweeps idle closed breakers but keeps open ones", () => {
    const r = createBreakerRegistry({
      idleMs: 1_000,
      breaker: { consecutiveFailures: 1, failureRateThreshold: 0, openMs: 5_000 },
    });
    r.get("idle", 0);
    const p = r.tryAcquire("open", 0);
    if (p.admitted) p.release(FAIL, 0);
    r.get("busy", 900);
    expect(r.sweep(1_000)).toBe(1);
    expect(r.peek("idle")).toBeUndefined();
    expect(r.peek("open")).toBeDefined();
    expect(r.peek("busy")).toBeDefined();
    // Once its open time is over an idle breaker goes too.
    expect(r.sweep(5_000)).toBe(2);
    expect(r.size).toBe(0);
  });

  it("sweeps lazily from get, at most once per idleMs", () => {
    const r = createBreakerRegistry({ idleMs: 1_000 });
    r.get("a", 0);
    r.get("b", 999);
    expect(r.size).toBe(2);
    r.get("c", 1_000); // sweep runs: a is idle for 1000
    expect(r.peek("a")).toBeUndefined();
    expect(r.size).toBe(2);
    r.get("d", 1_500); // no sweep yet
    r.get("e", 1_999);
    // b has been idle for 1000 ms, but the next sweep is only due at 2000.
    expect(r.peek("b")).toBeDefined();
    r.get("f", 2_000);
    expect(r.peek("b")).toBeUndefined();
    expect(r.peek("d")).toBeDefined();
  });

  it("deletes a key", () => {
    const r = createBreakerRegistry();
    r.get("a", 0);
    expect(r.delete("a")).toBe(true);
    expect(r.delete("a")).toBe(false);
    expect(r.size).toBe(0);
  });

  it("handles 10k breakers quickly", () => {
    const r = createBreakerRegistry({ breaker: { consecutiveFailures: 3 } });
    const start = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const p = r.tryAcquire(`key-${i}`, i);
      if (p.admitted) p.release(FAIL, i);
    }
    expect(r.size).toBe(10_000);
    // Generous bound: creation is ~10 us per breaker; this only catches an O(n^2) slip.
    expect(performance.now() - start).toBeLessThan(2_000);
    expect(r.sweep(10_000 + 300_000)).toBe(10_000);
  });

  it.each([0, -1, Number.NaN])("rejects idleMs %s", (idleMs) => {
    expect(() => createBreakerRegistry({ idleMs })).toThrow(
      new RangeError(`idleMs ${idleMs} must be a finite number > 0`),
    );
  });

  it("validates breaker options once, at construction", () => {
    expect(() => createBreakerRegistry({ breaker: { halfOpenProbes: 0 } })).toThrow(
      new RangeError("halfOpenProbes 0 must be an integer >= 1"),
    );
  });
});
