import { describe, expect, it } from "vitest";
import { syncEndpointLoads } from "../../src/balancer/endpoint-load.js";
import { createLoadPenalty, LOAD_PENALTY_DEFAULTS } from "../../src/balancer/load-penalty.js";
import { createP2cEwmaPicker } from "../../src/balancer/p2c-ewma.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { seededRandom } from "./seeded-random.js";

const A = "10.0.0.1:80";
const B = "10.0.0.2:80";

describe("load penalty", () => {
  it.each([
    // [records as [address, pushbackMs, at], query address, query at, factor, until]
    ["no record: factor 1", [], A, 0, 1, undefined],
    ["penalised for the pushback", [[A, 50, 0]], A, 49, 1000, 50],
    ["ends at the pushback", [[A, 50, 0]], A, 50, 1, undefined],
    ["another endpoint is unaffected", [[A, 50, 0]], B, 10, 1, undefined],
    ["pushback 0 does not penalise", [[A, 0, 0]], A, 0, 1, undefined],
    [
      "a longer running penalty is kept",
      [
        [A, 500, 0],
        [A, 10, 100],
      ],
      A,
      200,
      1000,
      500,
    ],
    [
      "a longer new one extends it",
      [
        [A, 50, 0],
        [A, 100, 40],
      ],
      A,
      120,
      1000,
      140,
    ],
    ["capped at maxPenaltyMs", [[A, 3_600_000, 0]], A, 10_000, 1, undefined],
  ] as const)("%s", (_name, records, address, at, factor, until) => {
    const p = createLoadPenalty();
    for (const [a, ms, t] of records) p.record(a, ms, t);
    expect(p.until(address, at)).toBe(until);
    expect(p.factor(address, at)).toBe(factor);
  });

  it("retain forgets endpoints that left; options are validated", () => {
    const p = createLoadPenalty({ factor: 5, maxPenaltyMs: 100 });
    p.record(A, 1_000, 0);
    p.record(B, 1_000, 0);
    expect(p.until(A, 0)).toBe(100);
    expect(p.factor(A, 0)).toBe(5);
    p.retain(new Set([B]));
    expect(p.until(A, 0)).toBeUndefined();
    expect(p.until(B, 0)).toBe(100);
    expect(() => createLoadPenalty({ factor: 0.5 })).toThrow(/loadPenalty.factor 0.5 must be/);
    expect(() => createLoadPenalty({ maxPenaltyMs: -1 })).toThrow(/maxPenaltyMs -1/);
    expect(LOAD_PENALTY_DEFAULTS.factor).toBe(1000);
  });

  it("p2c-ewma sends nothing to a penalised endpoint while another is free, and shares again after", () => {
    const clock = createFakeClock();
    const eps = [createEndpoint(A), createEndpoint(B), createEndpoint("10.0.0.3:80")];
    const loads = syncEndpointLoads(new Map(), eps, 0);
    const penalty = createLoadPenalty();
    const picker = createP2cEwmaPicker(eps, {
      loads,
      clock,
      random: seededRandom(7),
      penalty: penalty.factor,
    });
    penalty.record(A, 100, 0);
    const count = (n: number) => {
      const by = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const r = picker.pick()!;
        by.set(r.endpoint.address, (by.get(r.endpoint.address) ?? 0) + 1);
        r.done({ ok: true, latencyMs: 1 });
      }
      return by;
    };
    expect(count(300).get(A) ?? 0).toBe(0);
    clock.advance(100);
    expect(count(300).get(A) ?? 0).toBeGreaterThan(50);
    // All penalised: the usual cost decides among them, every endpoint still gets calls.
    for (const e of eps) penalty.record(e.address, 100, clock.now());
    expect(count(300).size).toBe(3);
  });
});
