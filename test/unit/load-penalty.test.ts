import { describe, expect, it } from "vitest";
import { syncEndpointLoads } from "../../src/balancer/endpoint-load.js";
import { createLoadPenalty, NO_LOAD_PENALTY } from "../../src/balancer/load-penalty.js";
import { createP2cEwmaPicker } from "../../src/balancer/p2c-ewma.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { seededRandom } from "./seeded-random.js";

const A = "10.0.0.1:80";
const B = "10.0.0.2:80";

describe("load penalty", () => {
  it.each([
    // [records as [address, pushbackMs, at], query address, query at, extra load]
    ["no record", [], A, 0, 0],
    ["one shed answer counts for its pushback", [[A, 50, 0]], A, 49, 1],
    ["and no longer", [[A, 50, 0]], A, 50, 0],
    ["another endpoint is unaffected", [[A, 50, 0]], B, 10, 0],
    ["pushback 0 counts nothing", [[A, 0, 0]], A, 0, 0],
    [
      "answers add up",
      [
        [A, 100, 0],
        [A, 100, 10],
        [A, 100, 20],
      ],
      A,
      50,
      3,
    ],
    [
      "each ends on its own",
      [
        [A, 100, 0],
        [A, 100, 10],
        [A, 100, 20],
      ],
      A,
      105,
      2,
    ],
    [
      "out of order ends",
      [
        [A, 500, 0],
        [A, 10, 10],
        [A, 100, 20],
      ],
      A,
      30,
      2,
    ],
    ["capped at maxPenaltyMs", [[A, 3_600_000, 0]], A, 10_000, 0],
  ] as const)("%s", (_name, records, address, at, extra) => {
    const p = createLoadPenalty();
    for (const [a, ms, t] of records) p.record(a, ms, t);
    expect(p.extraLoad(address, at)).toBe(extra);
  });

  it("bounds what it remembers, forgets endpoints that left, validates options", () => {
    const p = createLoadPenalty({ maxPenaltyMs: 100 });
    for (let i = 0; i < 5_000; i++) p.record(A, 1_000, 0);
    expect(p.extraLoad(A, 0)).toBe(1_000);
    p.record(B, 1_000, 0);
    p.retain(new Set([B]));
    expect(p.extraLoad(A, 0)).toBe(0);
    expect(p.extraLoad(B, 99)).toBe(1);
    expect(p.extraLoad(B, 100)).toBe(0);
    expect(createLoadPenalty({ maxPenaltyMs: 0 }).extraLoad(A, 0)).toBe(0);
    expect(NO_LOAD_PENALTY.extraLoad(A, 0)).toBe(0);
    expect(() => createLoadPenalty({ maxPenaltyMs: -1 })).toThrow(
      /loadPenalty.maxPenaltyMs -1 must be a number >= 0/,
    );
  });

  it("p2c-ewma weighs recently shed calls as load: the endpoint that shed gets fewer picks until they expire", () => {
    const clock = createFakeClock();
    const eps = [createEndpoint(A), createEndpoint(B), createEndpoint("10.0.0.3:80")];
    const loads = syncEndpointLoads(new Map(), eps, 0);
    const penalty = createLoadPenalty();
    const picker = createP2cEwmaPicker(eps, {
      loads,
      clock,
      random: seededRandom(7),
      extraLoad: penalty.extraLoad,
    });
    // Hold 2 calls open on each endpoint: equal load.
    for (let i = 0; i < 6; i++) picker.pick();
    const count = (n: number) => {
      const by = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const r = picker.pick()!;
        by.set(r.endpoint.address, (by.get(r.endpoint.address) ?? 0) + 1);
        r.done({ ok: true, latencyMs: 1 });
      }
      return by;
    };
    const before = count(300).get(A) ?? 0;
    expect(before).toBeGreaterThan(50);
    // A shed 3 calls: it looks as busy as 5 in flight against 2 elsewhere,
    // and loses every draw.
    for (let i = 0; i < 3; i++) penalty.record(A, 100, clock.now());
    expect(count(300).get(A) ?? 0).toBe(0);
    clock.advance(100);
    expect(count(300).get(A) ?? 0).toBeGreaterThan(50);
  });
});
