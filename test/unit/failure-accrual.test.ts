import { describe, expect, it } from "vitest";
import {
  createFailureAccrual,
  type FailureAccrualOptions,
} from "../../src/breaker/failure-accrual.js";

const count = { type: "count", size: 10 } as const;

describe("failure accrual", () => {
  it("trips on N consecutive failures and a success breaks the run", () => {
    const a = createFailureAccrual({ window: count, consecutiveFailures: 3 });
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(false, false, 0)).toBeUndefined();
    expect(a.consecutiveFailures).toBe(0);
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBe("consecutive-failures");
    expect(a.consecutiveFailures).toBe(3);
  });

  it("never trips with every rule off (the defaults)", () => {
    const a = createFailureAccrual({ window: count });
    for (let i = 0; i < 100; i++) expect(a.record(true, true, i)).toBeUndefined();
  });

  it("trips on failure rate only once minimumCalls is reached", () => {
    const a = createFailureAccrual({ window: count, failureRateThreshold: 0.5, minimumCalls: 4 });
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBeUndefined();
    expect(a.record(false, false, 0)).toBe("failure-rate"); // 3/4 >= 0.5
  });

  it("trips on failure rate exactly at the threshold", () => {
    const a = createFailureAccrual({ window: count, failureRateThreshold: 0.5, minimumCalls: 2 });
    expect(a.record(false, false, 0)).toBeUndefined();
    expect(a.record(true, false, 0)).toBe("failure-rate");
  });

  it("trips on slow-call rate", () => {
    const a = createFailureAccrual({ window: count, slowCallRateThreshold: 1, minimumCalls: 2 });
    expect(a.record(false, true, 0)).toBeUndefined();
    expect(a.record(false, true, 0)).toBe("slow-call-rate");
  });

  it("checks consecutive failures before rates", () => {
    const a = createFailureAccrual({
      window: count,
      consecutiveFailures: 2,
      failureRateThreshold: 0.1,
      minimumCalls: 2,
    });
    a.record(true, false, 0);
    expect(a.record(true, false, 0)).toBe("consecutive-failures");
  });

  it("stats and reset expose and clear the window", () => {
    const a = createFailureAccrual({ window: count, consecutiveFailures: 5 });
    a.record(true, true, 0);
    expect(a.stats(0)).toEqual({ calls: 1, failures: 1, slowCalls: 1 });
    a.reset();
    expect(a.stats(0)).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
    expect(a.consecutiveFailures).toBe(0);
  });

  it("defaults to a 10 s time window", () => {
    const a = createFailureAccrual({ failureRateThreshold: 1, minimumCalls: 2 });
    a.record(true, false, 0);
    // The first failure has left the window, so this is 1 call, below minimumCalls.
    expect(a.record(true, false, 10_000)).toBeUndefined();
  });

  it.each<[FailureAccrualOptions, string]>([
    [{ consecutiveFailures: -1 }, "consecutiveFailures -1 must be an integer >= 0"],
    [{ consecutiveFailures: 1.5 }, "consecutiveFailures 1.5 must be an integer >= 0"],
    [{ failureRateThreshold: 1.5 }, "failureRateThreshold 1.5 must be in [0, 1]"],
    [{ failureRateThreshold: Number.NaN }, "failureRateThreshold NaN must be in [0, 1]"],
    [{ slowCallRateThreshold: -0.1 }, "slowCallRateThreshold -0.1 must be in [0, 1]"],
    [{ minimumCalls: 0 }, "minimumCalls 0 must be an integer >= 1"],
    [{ window: { type: "count", size: 0 } }, "window size 0 must be an integer in 1..100000"],
  ])("rejects %o", (options, message) => {
    expect(() => createFailureAccrual(options)).toThrow(new RangeError(message));
  });
});
