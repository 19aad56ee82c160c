import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type EndpointLoads, syncEndpointLoads } from "../../src/balancer/endpoint-load.js";
import { createOutlierDetector } from "../../src/balancer/outlier-detector.js";
import { createP2cEwmaPicker } from "../../src/balancer/p2c-ewma.js";
import { createSlowStart } from "../../src/balancer/slow-start.js";
import { createEndpoint, type Endpoint } from "../../src/discovery/endpoint.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { seededRandom, sequence } from "./seeded-random.js";

function fleet(n: number, weights: number[] = []): Endpoint[] {
  return Array.from({ length: n }, (_, i) =>
    createEndpoint(`10.0.0.${i}:80`, { weight: weights[i] ?? 1 }),
  );
}

function setup(endpoints: Endpoint[], random: () => number, now = 0) {
  const clock = createFakeClock(now);
  const loads = syncEndpointLoads(new Map(), endpoints, clock.now());
  const picker = createP2cEwmaPicker(endpoints, { loads, clock, random });
  return { clock, loads, picker };
}

describe("p2c-ewma picker", () => {
  it("picks nothing with no endpoint and always the one with one", () => {
    const clock = createFakeClock();
    expect(createP2cEwmaPicker([], { loads: new Map(), clock }).pick()).toBeUndefined();
    const [only] = fleet(1);
    const { picker, loads } = setup([only!], () => 0.3);
    const r = picker.pick();
    expect(r?.endpoint).toBe(only);
    expect(loads.get(only!.address)?.ewma.pending).toBe(1);
  });

  it("draws two distinct endpoints and takes the cheaper", () => {
    const eps = fleet(3);
    const { picker, loads } = setup(eps, sequence(0, 0));
    // i = 0; j = floor(0 * 2) = 0 -> bumped to 1: compares a vs b; equal cost -> first.
    expect(picker.pick()?.endpoint).toBe(eps[0]);
    // Now a has one pending call, so b wins the same draw.
    expect(picker.pick()?.endpoint).toBe(eps[1]);
    expect(loads.get(eps[0]!.address)?.ewma.pending).toBe(1);
  });

  it("prefers the endpoint with the lower observed latency", () => {
    const eps = fleet(2);
    const { picker, clock } = setup(eps, seededRandom(1));
    // Teach it that endpoint 0 is slow and endpoint 1 fast.
    const seen = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const r = picker.pick()!;
      seen.set(r.endpoint.address, (seen.get(r.endpoint.address) ?? 0) + 1);
      clock.advance(1);
      r.done({ ok: true, latencyMs: r.endpoint === eps[0] ? 100 : 5 });
    }
    expect(seen.get(eps[1]!.address)!).toBeGreaterThan(190);
  });

  it("counts a call as pending from pick to done, once, cancelled calls included", () => {
    const eps = fleet(2);
    const { picker, loads, clock } = setup(eps, () => 0);
    const r = picker.pick()!;
    const load = loads.get(r.endpoint.address)!;
    expect(load.ewma.pending).toBe(1);
    clock.advance(5_000);
    r.done({ ok: false, code: Code.Canceled, latencyMs: 5_000 });
    r.done({ ok: false, code: Code.Canceled, latencyMs: 5_000 });
    expect(load.ewma.pending).toBe(0);
    // The cancelled call's latency is not a server RTT: only the seed's decay shows.
    expect(load.ewma.rttMs(clock.now())).toBeCloseTo(30 * Math.exp(-0.5), 9);
  });

  it("does not feed a latency marked latencySample false (a new connection's handshake)", () => {
    const eps = fleet(2);
    const { picker, loads, clock } = setup(eps, () => 0);
    const r = picker.pick()!;
    const load = loads.get(r.endpoint.address)!;
    clock.advance(5_000);
    r.done({ ok: true, latencyMs: 900, latencySample: false });
    expect(load.ewma.pending).toBe(0);
    expect(load.ewma.rttMs(clock.now())).toBeCloseTo(30 * Math.exp(-0.5), 9);
  });

  it("feeds done latencies to the endpoint's EWMA at the clock's time", () => {
    const eps = fleet(2);
    const { picker, loads, clock } = setup(eps, () => 0);
    const r = picker.pick()!;
    clock.advance(3);
    r.done({ ok: false, code: Code.Unavailable, latencyMs: 250 });
    expect(loads.get(r.endpoint.address)!.ewma.rttMs(clock.now())).toBe(250);
  });

  it("divides cost by weight", () => {
    const eps = fleet(2, [1, 3]);
    const { picker } = setup(eps, seededRandom(7));
    const counts = [0, 0];
    // Never call done: pending alone drives the choice, and with two endpoints
    // every pick compares both, so pending converges to the weight ratio.
    for (let i = 0; i < 400; i++) counts[eps.indexOf(picker.pick()!.endpoint)]!++;
    expect(counts[1]! / counts[0]!).toBeCloseTo(3, 0);
  });

  it("applies slow start to endpoints that just became ready", () => {
    const eps = fleet(2);
    const clock = createFakeClock(0);
    let loads: EndpointLoads = syncEndpointLoads(new Map(), [eps[0]!], 0);
    clock.set(60_000);
    loads = syncEndpointLoads(loads, eps, clock.now()); // eps[1] ready since 60 s
    // Give the old endpoint the same 30 ms estimate as the new one's seed.
    loads.get(eps[0]!.address)!.ewma.observe(30, clock.now());
    const slowStart = createSlowStart({ windowMs: 30_000 });
    const picker = createP2cEwmaPicker(eps, { loads, clock, random: seededRandom(3), slowStart });
    const counts = [0, 0];
    for (let i = 0; i < 110; i++) counts[eps.indexOf(picker.pick()!.endpoint)]!++;
    // Factor 0.1: the new endpoint looks ten times as loaded.
    expect(counts[1]).toBeLessThanOrEqual(10);
    expect(counts[1]).toBeGreaterThanOrEqual(9);
    clock.set(90_000); // ramp over: now it catches up on its share
    for (let i = 0; i < 200; i++) counts[eps.indexOf(picker.pick()!.endpoint)]!++;
    expect(Math.abs(counts[0]! - counts[1]!)).toBeLessThanOrEqual(1);
  });

  it("rejects endpoints without load state or with a bad weight, at build time", () => {
    const eps = fleet(2);
    const clock = createFakeClock();
    expect(() => createP2cEwmaPicker(eps, { loads: new Map(), clock })).toThrow(
      new RangeError("endpoint 10.0.0.0:80 has no load state"),
    );
    const zero = [createEndpoint("z:1", { weight: 0 })];
    expect(() =>
      createP2cEwmaPicker(zero, { loads: syncEndpointLoads(new Map(), zero, 0), clock }),
    ).toThrow(new RangeError("endpoint z:1 weight 0 must be > 0"));
  });

  it("spreads picks fairly under equal load (chi-square, seeded)", () => {
    const n = 10;
    const picks = 20_000;
    const eps = fleet(n);
    const { picker } = setup(eps, seededRandom(42));
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < picks; i++) {
      const r = picker.pick()!;
      counts[eps.indexOf(r.endpoint)]!++;
      // Instant completion with the same latency keeps every cost equal (no time passes).
      r.done({ ok: true, latencyMs: 10 });
    }
    const expected = picks / n;
    const chi2 = counts.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
    // 9 degrees of freedom: p = 0.001 at 27.88.
    expect(chi2).toBeLessThan(27.88);
  });

  it("keeps the busiest endpoint close to the mean when calls never finish (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.integer(), (n, seed) => {
        const eps = fleet(n);
        const { picker, loads } = setup(eps, seededRandom(seed));
        for (let i = 0; i < n * 50; i++) picker.pick();
        const pending = eps.map((e) => loads.get(e.address)!.ewma.pending);
        // P2C's balls-into-bins bound: the maximum exceeds the mean by
        // O(log log n), a small constant here (uniform random would be O(sqrt(picks / n))).
        expect(Math.max(...pending) - 50).toBeLessThanOrEqual(4);
      }),
    );
  });

  it("never picks an endpoint outside the ready list (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.boolean(), { minLength: 10, maxLength: 10 }),
        fc.integer(),
        (n, keep, seed) => {
          const all = fleet(n);
          const ready = all.filter((_, i) => keep[i]);
          const { picker } = setup(ready, seededRandom(seed));
          for (let i = 0; i < 50; i++) {
            const r = picker.pick();
            if (ready.length === 0) expect(r).toBeUndefined();
            else expect(ready).toContain(r!.endpoint);
            r?.done({ ok: true, latencyMs: i });
          }
        },
      ),
    );
  });

  it("composed with the outlier detector, never picks an ejected endpoint (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer(),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 8, maxLength: 8 }),
        (n, seed, failureRates) => {
          const eps = fleet(n);
          const random = seededRandom(seed);
          const clock = createFakeClock(0);
          let loads: EndpointLoads = new Map();
          let picker = createP2cEwmaPicker([], { loads, clock });
          // The balancer's job in miniature: rebuild the picker from the
          // detector's ready list whenever an ejection starts or ends.
          const rebuild = () => {
            const ready = detector.filter(eps, clock.now());
            expect(ready.length).toBeGreaterThanOrEqual(1);
            loads = syncEndpointLoads(loads, ready, clock.now());
            picker = createP2cEwmaPicker(ready, { loads, clock, random });
          };
          const detector = createOutlierDetector({
            consecutiveFailures: 3,
            baseEjectionMs: 1_000,
            onEvent: (e) => {
              if (e.type === "ejected") rebuild();
            },
          });
          detector.setEndpoints(eps);
          rebuild();
          for (let round = 0; round < 40; round++) {
            const changeAt = detector.nextChangeAt();
            if (changeAt !== undefined && clock.now() >= changeAt) rebuild();
            for (let i = 0; i < 10; i++) {
              const now = clock.now();
              const r = picker.pick()!;
              expect(detector.isEjected(r.endpoint.address, now)).toBe(false);
              const ok = random() >= failureRates[eps.indexOf(r.endpoint)]!;
              const code = ok ? undefined : Code.Unavailable;
              r.done({ ok, code, latencyMs: 1 });
              detector.record(r.endpoint.address, { ok, code }, now);
            }
            clock.advance(100);
          }
        },
      ),
    );
  });
});
