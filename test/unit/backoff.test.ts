import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BackoffOptions, createBackoff } from "../../src/call/backoff.js";

describe("full-jitter backoff", () => {
  it.each([
    [1, 100],
    [2, 200],
    [3, 400],
    [6, 3_200],
    [7, 5_000],
    [100, 5_000],
    [10_000, 5_000],
  ])("attempt %i has cap %i ms with the defaults", (attempt, cap) => {
    expect(createBackoff({ random: () => 0.999999999 }).delayMs(attempt)).toBeCloseTo(cap, 3);
    expect(createBackoff({ random: () => 0.5 }).delayMs(attempt)).toBe(cap / 2);
    expect(createBackoff({ random: () => 0 }).delayMs(attempt)).toBe(0);
  });

  it("treats attempts below 1 as 1 and floors fractions", () => {
    const b = createBackoff({ random: () => 0.5 });
    expect(b.delayMs(0)).toBe(50);
    expect(b.delayMs(-3)).toBe(50);
    expect(b.delayMs(Number.NaN)).toBe(50);
    expect(b.delayMs(2.9)).toBe(100);
  });

  it("clamps a random() outside [0, 1)", () => {
    expect(createBackoff({ random: () => 7 }).delayMs(1)).toBe(100);
    expect(createBackoff({ random: () => -1 }).delayMs(1)).toBe(0);
    expect(createBackoff({ random: () => Number.NaN }).delayMs(1)).toBe(0);
  });

  it("allows zero delays", () => {
    const b = createBackoff({ initialMs: 0, maxMs: 0, random: () => 0.9 });
    expect(b.delayMs(1)).toBe(0);
    expect(b.delayMs(5_000)).toBe(0);
  });

  it("is immutable", () => {
    expect(Object.isFrozen(createBackoff())).toBe(true);
  });

  it("always stays within [0, cap] (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 10_000, noNaN: true }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.double({ min: 0, max: 100_000, noNaN: true }),
        fc.integer({ min: -5, max: 5_000 }),
        fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
        (initialMs, multiplier, extra, attempt, r) => {
          const maxMs = initialMs + extra;
          const b = createBackoff({ initialMs, multiplier, maxMs, random: () => r });
          const n = Math.max(1, attempt);
          const cap = initialMs === 0 ? 0 : Math.min(maxMs, initialMs * multiplier ** (n - 1));
          const d = b.delayMs(attempt);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThanOrEqual(maxMs);
          expect(d).toBeLessThanOrEqual(cap + 1e-9);
        },
      ),
    );
  });

  it.each<[BackoffOptions, string]>([
    [{ initialMs: -1 }, "initialMs -1 must be a finite number >= 0"],
    [{ initialMs: Number.POSITIVE_INFINITY }, "initialMs Infinity must be a finite number >= 0"],
    [{ multiplier: 0.5 }, "multiplier 0.5 must be a finite number >= 1"],
    [{ maxMs: 50 }, "maxMs 50 must be a finite number >= initialMs 100"],
    [{ maxMs: Number.NaN }, "maxMs NaN must be a finite number >= initialMs 100"],
    [{ random: 3 as unknown as () => number }, "random 3 must be a function"],
  ])("rejects %o", (options, message) => {
    expect(() => createBackoff(options)).toThrow(new RangeError(message));
  });
});
