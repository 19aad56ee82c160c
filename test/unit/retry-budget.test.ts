import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRetryBudget, type RetryBudgetOptions } from "../../src/retry/retry-budget.js";

describe("retry budget", () => {
  it("grants the floor of minRetriesPerSecond * ttl seconds without any calls", () => {
    const b = createRetryBudget({ minRetriesPerSecond: 1, ttlMs: 3_000 });
    expect(b.available(0)).toBe(3);
    expect([b.tryWithdraw(0), b.tryWithdraw(0), b.tryWithdraw(0), b.tryWithdraw(0)]).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(b.withdrawn).toBe(3);
    expect(b.exhausted).toBe(1);
  });

  it("adds ratio * calls on top of the floor", () => {
    const b = createRetryBudget({ ratio: 0.2, minRetriesPerSecond: 0 });
    for (let i = 0; i < 9; i++) b.recordCall(0);
    expect(b.available(0)).toBe(1); // 1.8
    b.recordCall(0);
    expect(b.available(0)).toBe(2);
  });

  it("absorbs float error (0.1 * 30 calls is 3 retries)", () => {
    const b = createRetryBudget({ ratio: 0.1, minRetriesPerSecond: 0 });
    for (let i = 0; i < 30; i++) b.recordCall(0);
    expect(b.available(0)).toBe(3);
  });

  it("refills as withdrawals leave the window", () => {
    const b = createRetryBudget({ minRetriesPerSecond: 1, ttlMs: 1_000, ratio: 0 });
    expect(b.tryWithdraw(0)).toBe(true);
    expect(b.tryWithdraw(0)).toBe(false);
    expect(b.tryWithdraw(999)).toBe(false);
    expect(b.tryWithdraw(1_000)).toBe(true);
    expect(b.exhausted).toBe(2);
  });

  it("forgets calls that left the window", () => {
    const b = createRetryBudget({ ratio: 1, minRetriesPerSecond: 0, ttlMs: 1_000 });
    b.recordCall(0);
    expect(b.available(500)).toBe(1);
    expect(b.available(1_000)).toBe(0);
  });

  it("uses Finagle's defaults: 20% plus 10/s over 10 s", () => {
    const b = createRetryBudget();
    expect(b.available(0)).toBe(100);
    for (let i = 0; i < 100; i++) b.recordCall(0);
    expect(b.available(0)).toBe(120);
  });

  it("never allows more than ratio * calls + min * ttl seconds in its window (property)", () => {
    const event = fc.record({
      dt: fc.integer({ min: 0, max: 400 }),
      call: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.integer({ min: 0, max: 5 }),
        fc.array(event, { maxLength: 300 }),
        (ratio, minRetriesPerSecond, events) => {
          const ttlMs = 1_000;
          const b = createRetryBudget({ ratio, minRetriesPerSecond, ttlMs, buckets: 10 });
          const calls: number[] = [];
          const retries: number[] = [];
          let now = 0;
          for (const e of events) {
            now += e.dt;
            if (e.call) {
              b.recordCall(now);
              calls.push(now);
              continue;
            }
            if (!b.tryWithdraw(now)) continue;
            retries.push(now);
            // At the moment it grants a retry, the retries in the window
            // (bucket-granular: the current 100 ms bucket and the 9 before it)
            // fit the bound. Later, deposits may expire before the withdrawals.
            const bucketMs = ttlMs / 10;
            const epoch = Math.floor(now / bucketMs);
            const inWindow = (t: number) => Math.floor(t / bucketMs) > epoch - 10;
            const bound =
              ratio * calls.filter(inWindow).length + (minRetriesPerSecond * ttlMs) / 1_000;
            expect(retries.filter(inWindow).length).toBeLessThanOrEqual(bound + 1e-6);
          }
          expect(b.withdrawn).toBe(retries.length);
        },
      ),
    );
  });

  it.each<[RetryBudgetOptions, string]>([
    [{ ratio: -0.1 }, "ratio -0.1 must be in [0, 1000]"],
    [{ ratio: Number.NaN }, "ratio NaN must be in [0, 1000]"],
    [{ minRetriesPerSecond: -1 }, "minRetriesPerSecond -1 must be a finite number >= 0"],
    [{ ttlMs: 0 }, "ttlMs 0 must be a finite number > 0"],
    [{ buckets: 0 }, "buckets 0 must be an integer in 1..1000"],
  ])("rejects %o", (options, message) => {
    expect(() => createRetryBudget(options)).toThrow(new RangeError(message));
  });
});
