import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createGradient2Limit, type Gradient2State } from "../../src/limit/gradient2-limit.js";
import type { LimitWindow } from "../../src/limit/limit-algorithm.js";

function win(avgRttMs: number, maxInFlight: number, endMs = 0): LimitWindow {
  return { endMs, samples: 10, avgRttMs, minRttMs: avgRttMs, maxInFlight, didDrop: false };
}

describe("gradient2 limit", () => {
  it.each([
    // [case, windows before (rtt), last window rtt, in flight, expectation on the limit]
    ["constant RTT at the limit grows by the smoothed queue allowance", 10, 10, 20, "up"],
    ["short RTT twice the long one shrinks it", 10, 20, 20, "down"],
    ["short RTT within the tolerance (1.4x < 1.5x) still grows", 10, 14, 20, "up"],
    ["app-limited (in flight < limit / 2) holds it", 10, 40, 9, "same"],
  ] as const)("%s", (_name, baseRtt, rtt, inFlight, expected) => {
    const g = createGradient2Limit({ initialLimit: 20, minLimit: 1, maxLimit: 100 });
    let s = g.initial();
    for (let i = 0; i < 10; i++) s = g.update(s, win(baseRtt, 1));
    expect(s.limit).toBe(20);
    const next = g.update(s, win(rtt, inFlight));
    if (expected === "up") expect(next.limit).toBeGreaterThan(s.limit);
    if (expected === "down") expect(next.limit).toBeLessThan(s.limit);
    if (expected === "same") expect(next.limit).toBe(s.limit);
  });

  it("computes Netflix's update exactly (the same smoothing both ways)", () => {
    const g = createGradient2Limit({
      initialLimit: 20,
      smoothing: 0.5,
      decreaseSmoothing: 0.5,
      rttTolerance: 1,
      queueSize: 4,
    });
    const s0: Gradient2State = { limit: 20, longRttMs: 10, windows: 100, lastRttMs: 10 };
    // long' = 10 * (1 - 2/6001) + 20 * 2/6001; gradient = long'/20; limit' = 10 + (20g + 4)/2.
    const long = 10 * (1 - 2 / 6001) + 20 * (2 / 6001);
    const expected = 20 * 0.5 + (20 * (long / 20) + 4) * 0.5;
    const s1 = g.update(s0, win(20, 20));
    expect(s1.longRttMs).toBeCloseTo(long, 10);
    expect(s1.limit).toBeCloseTo(expected, 10);
    expect(g.limitOf(s1)).toBe(Math.floor(expected));
  });

  it("applies a fall in full by default (decreaseSmoothing 1) and smooths growth (0.2)", () => {
    const g = createGradient2Limit({ rttTolerance: 1, queueSize: 4 });
    const s0: Gradient2State = { limit: 20, longRttMs: 10, windows: 100, lastRttMs: 10 };
    // Queueing: the estimate (20 * long'/20 + 4 = long' + 4, about 14) replaces the limit at once.
    const down = g.update(s0, win(20, 20));
    expect(down.limit).toBeCloseTo(down.longRttMs + 4, 10);
    // No queueing: the estimate (20 + 4) moves the limit a fifth of the way.
    const up = g.update(s0, win(10, 20));
    expect(up.limit).toBeCloseTo(20 * 0.8 + 24 * 0.2, 10);
  });

  it("comes down from its initial limit within a few windows at the onset of overload", () => {
    // A worker queue: 4 workers of 100 ms, every call admitted up to the
    // limit, so the RTT is 25 ms per call in flight (at least 100 ms).
    const rttAt = (limit: number) => Math.max(100, 25 * limit);
    const settle = (o: { decreaseSmoothing?: number }) => {
      const g = createGradient2Limit({ initialLimit: 40, ...o });
      let s = g.initial();
      for (let i = 0; i < 10; i++) s = g.update(s, win(100, 2));
      let windows = 0;
      while (g.limitOf(s) > 10 && windows < 100) {
        s = g.update(s, win(rttAt(g.limitOf(s)), g.limitOf(s)));
        windows++;
      }
      return windows;
    };
    expect(settle({})).toBeLessThanOrEqual(3);
    // Netflix's symmetric smoothing takes several times as many windows.
    expect(settle({ decreaseSmoothing: 0.2 })).toBeGreaterThan(3 * settle({}));
  });

  it("never cuts the limit by more than half the smoothed step in one window", () => {
    const g = createGradient2Limit({
      initialLimit: 100,
      maxLimit: 100,
      smoothing: 1,
      queueSize: 0,
    });
    let s = g.initial();
    for (let i = 0; i < 10; i++) s = g.update(s, win(1, 100));
    s = g.update(s, win(1000, 100));
    expect(s.limit).toBe(50);
  });

  it("decays a long RTT far above the short one (load is back to normal)", () => {
    const g = createGradient2Limit();
    const s0: Gradient2State = { limit: 20, longRttMs: 100, windows: 100, lastRttMs: 100 };
    const s1 = g.update(s0, win(10, 1));
    expect(s1.longRttMs).toBeLessThan(100 * (1 - 2 / 6001) + 10 * (2 / 6001));
  });

  it("ignores windows with no measurable RTT", () => {
    const g = createGradient2Limit();
    const s = g.initial();
    expect(g.update(s, win(0, 20))).toBe(s);
    expect(g.update(s, win(Number.NaN, 20))).toBe(s);
  });

  it.each([
    [{ minLimit: 0 }, "minLimit 0"],
    [{ minLimit: 5, maxLimit: 4, initialLimit: 4 }, "minLimit 5 must be <= maxLimit 4"],
    [{ initialLimit: 2000 }, "initialLimit 2000"],
    [{ smoothing: 0 }, "smoothing 0"],
    [{ smoothing: 1.5 }, "smoothing 1.5"],
    [{ decreaseSmoothing: 0 }, "decreaseSmoothing 0"],
    [{ rttTolerance: 0.9 }, "rttTolerance 0.9"],
    [{ longWindow: 0 }, "longWindow 0"],
    [{ queueSize: -1 }, "queueSize -1"],
  ])("rejects %o", (options, text) => {
    expect(() => createGradient2Limit(options)).toThrow(RangeError);
    expect(() => createGradient2Limit(options)).toThrow(text);
  });

  const windowArb = fc.record({
    avgRttMs: fc.double({ min: 0.01, max: 10_000, noNaN: true }),
    maxInFlight: fc.integer({ min: 0, max: 2000 }),
  });

  it("keeps the limit within [minLimit, maxLimit] for any windows", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 0, max: 500 }),
        fc.array(windowArb, { maxLength: 200 }),
        (minLimit, span, windows) => {
          const maxLimit = minLimit + span;
          const g = createGradient2Limit({ minLimit, maxLimit, initialLimit: minLimit });
          let s = g.initial();
          for (const w of windows) {
            s = g.update(s, win(w.avgRttMs, w.maxInFlight));
            expect(s.limit).toBeGreaterThanOrEqual(minLimit);
            expect(s.limit).toBeLessThanOrEqual(maxLimit);
            expect(g.limitOf(s)).toBeGreaterThanOrEqual(minLimit);
            expect(g.limitOf(s)).toBeLessThanOrEqual(maxLimit);
          }
        },
      ),
    );
  });

  it("rises under constant RTT while the limit is used", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 5_000, noNaN: true }),
        fc.integer({ min: 1, max: 200 }),
        (rtt, initialLimit) => {
          const g = createGradient2Limit({ initialLimit, maxLimit: 1000 });
          let s = g.initial();
          for (let i = 0; i < 50; i++) {
            const before = s.limit;
            s = g.update(s, win(rtt, Math.ceil(s.limit)));
            expect(s.limit).toBeGreaterThanOrEqual(before);
          }
          expect(s.limit).toBeGreaterThan(initialLimit);
        },
      ),
    );
  });

  it("falls when the RTT grows well past the tolerance", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 1_000, noNaN: true }),
        fc.double({ min: 2, max: 50, noNaN: true }),
        fc.integer({ min: 20, max: 500 }),
        (rtt, factor, initialLimit) => {
          const g = createGradient2Limit({ initialLimit, maxLimit: 1000 });
          let s = g.initial();
          for (let i = 0; i < 10; i++) s = g.update(s, win(rtt, 0));
          const before = s.limit;
          for (let i = 0; i < 5; i++) s = g.update(s, win(rtt * factor, Math.ceil(s.limit)));
          expect(s.limit).toBeLessThan(before);
        },
      ),
    );
  });

  it("never mutates the state it is given", () => {
    const g = createGradient2Limit();
    const s = Object.freeze(g.initial());
    expect(() => g.update(s, win(5, 30))).not.toThrow();
  });
});
