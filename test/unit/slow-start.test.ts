import { describe, expect, it } from "vitest";
import {
  createSlowStart,
  NO_SLOW_START,
  type SlowStartOptions,
} from "../../src/balancer/slow-start.js";

describe("slow start", () => {
  it.each([
    [0, 0.1],
    [-100, 0.1],
    [1_500, 0.1],
    [3_000, 0.1],
    [15_000, 0.5],
    [29_999, 29_999 / 30_000],
    [30_000, 1],
    [1e9, 1],
  ])("ramps linearly by default: factor(%i) = %f", (ageMs, expected) => {
    expect(createSlowStart().factor(ageMs)).toBeCloseTo(expected, 9);
  });

  it("shapes the ramp with aggression (Envoy)", () => {
    const fast = createSlowStart({ windowMs: 100, aggression: 2 });
    const slow = createSlowStart({ windowMs: 100, aggression: 0.5 });
    expect(fast.factor(25)).toBeCloseTo(0.5, 9); // 0.25 ** (1/2)
    expect(slow.factor(50)).toBeCloseTo(0.25, 9); // 0.5 ** 2
    expect(slow.factor(10)).toBeCloseTo(0.1, 9); // 0.01 floored to min
  });

  it("is off with windowMs 0", () => {
    const off = createSlowStart({ windowMs: 0 });
    expect(off.factor(0)).toBe(1);
    expect(off.windowMs).toBe(0);
    expect(NO_SLOW_START.factor(-5)).toBe(1);
  });

  it.each<[SlowStartOptions, string]>([
    [{ windowMs: -1 }, "windowMs -1 must be a finite number >= 0"],
    [{ minWeightFactor: 0 }, "minWeightFactor 0 must be in (0, 1]"],
    [{ minWeightFactor: 1.1 }, "minWeightFactor 1.1 must be in (0, 1]"],
    [{ aggression: 0 }, "aggression 0 must be a finite number > 0"],
  ])("rejects %o", (options, message) => {
    expect(() => createSlowStart(options)).toThrow(new RangeError(message));
  });
});
