import { describe, expect, it } from "vitest";
import { createPeakEwma, type PeakEwmaOptions } from "../../src/balancer/peak-ewma.js";

describe("peak ewma", () => {
  it("starts at the seed RTT (default 30 ms), which decays from seededAt", () => {
    expect(createPeakEwma().rttMs(0)).toBe(30);
    const e = createPeakEwma({ seedRttMs: 50, seededAt: 1_000 });
    expect(e.rttMs(1_000)).toBe(50);
    expect(e.rttMs(11_000)).toBeCloseTo(50 / Math.E, 9);
  });

  it("stamps the seed at the first time it is given when seededAt is absent", () => {
    const e = createPeakEwma({ seedRttMs: 50 });
    expect(e.cost(5_000)).toBe(50);
    expect(e.rttMs(15_000)).toBeCloseTo(50 / Math.E, 9);
  });

  it("costs rtt * (pending + 1)", () => {
    const e = createPeakEwma({ seedRttMs: 10 });
    expect(e.cost(0)).toBe(10);
    e.start();
    e.start();
    expect(e.pending).toBe(2);
    expect(e.cost(0)).toBe(30);
    e.end();
    e.end();
    e.end(); // never below zero
    expect(e.pending).toBe(0);
    expect(e.cost(0)).toBe(10);
  });

  it("treats the seed like a sample: a lower first sample pulls it down gradually", () => {
    const e = createPeakEwma({ seedRttMs: 100, seededAt: 0, decayMs: 1_000 });
    e.observe(5, 1_000);
    expect(e.rttMs(1_000)).toBeCloseTo(100 / Math.E + 5 * (1 - 1 / Math.E), 9);
    const f = createPeakEwma({ seedRttMs: 10, seededAt: 0 });
    f.observe(40, 1);
    expect(f.rttMs(1)).toBe(40);
  });

  it("jumps straight to a higher sample", () => {
    const e = createPeakEwma();
    e.observe(10, 0);
    e.observe(500, 1);
    expect(e.rttMs(1)).toBe(500);
  });

  it("moves toward a lower sample with weight 1 - exp(-elapsed / decay)", () => {
    const e = createPeakEwma({ decayMs: 1_000 });
    e.observe(100, 0);
    e.observe(0, 1_000);
    expect(e.rttMs(1_000)).toBeCloseTo(100 * Math.exp(-1), 9);
    // Two samples at the same instant: the lower one has no weight yet.
    e.observe(0, 1_000);
    expect(e.rttMs(1_000)).toBeCloseTo(100 * Math.exp(-1), 9);
  });

  it("decays toward zero while idle, as linkerd does", () => {
    const e = createPeakEwma({ decayMs: 10_000 });
    e.observe(100, 0);
    expect(e.rttMs(10_000)).toBeCloseTo(100 / Math.E, 9);
    expect(e.cost(20_000)).toBeCloseTo(100 / Math.E ** 2, 9);
    // Reading does not change the state.
    expect(e.rttMs(10_000)).toBeCloseTo(100 / Math.E, 9);
    expect(e.rttMs(-5)).toBe(100);
  });

  it("ignores invalid samples and tolerates time going backwards", () => {
    const e = createPeakEwma({ seedRttMs: 0 });
    e.observe(20, 100);
    e.observe(Number.NaN, 200);
    e.observe(-1, 200);
    expect(e.rttMs(100)).toBe(20);
    e.observe(10, 50);
    expect(e.rttMs(100)).toBe(20);
  });

  it.each<[PeakEwmaOptions, string]>([
    [{ decayMs: 0 }, "decayMs 0 must be a finite number > 0"],
    [{ decayMs: Number.POSITIVE_INFINITY }, "decayMs Infinity must be a finite number > 0"],
    [{ seedRttMs: -1 }, "seedRttMs -1 must be a finite number >= 0"],
  ])("rejects %o", (options, message) => {
    expect(() => createPeakEwma(options)).toThrow(new RangeError(message));
  });
});
