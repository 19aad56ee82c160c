import { describe, expect, it } from "vitest";
import { createFailureWindow } from "../../src/breaker/failure-window.js";

describe("failure window", () => {
  describe("count-based", () => {
    it("holds the last N outcomes", () => {
      const w = createFailureWindow({ type: "count", size: 3 });
      w.record(true, false, 0);
      w.record(true, true, 0);
      expect(w.stats(0)).toEqual({ calls: 2, failures: 2, slowCalls: 1 });
      w.record(false, false, 0);
      w.record(false, false, 0); // evicts the first failure
      expect(w.stats(0)).toEqual({ calls: 3, failures: 1, slowCalls: 1 });
      w.record(false, false, 0); // evicts the slow failure
      expect(w.stats(0)).toEqual({ calls: 3, failures: 0, slowCalls: 0 });
    });

    it("never forgets by time", () => {
      const w = createFailureWindow({ type: "count", size: 3 });
      w.record(true, false, 0);
      expect(w.stats(1e12).failures).toBe(1);
    });

    it("reset empties it", () => {
      const w = createFailureWindow({ type: "count", size: 2 });
      w.record(true, true, 0);
      w.reset();
      expect(w.stats(0)).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
      w.record(true, false, 0);
      w.record(true, false, 0);
      w.record(false, false, 0);
      expect(w.stats(0)).toEqual({ calls: 2, failures: 1, slowCalls: 0 });
    });
  });

  describe("time-based", () => {
    it("forgets outcomes older than the window", () => {
      const w = createFailureWindow({ type: "time", windowMs: 1_000, buckets: 10 });
      w.record(true, false, 0);
      w.record(false, true, 500);
      expect(w.stats(500)).toEqual({ calls: 2, failures: 1, slowCalls: 1 });
      expect(w.stats(1_000)).toEqual({ calls: 1, failures: 0, slowCalls: 1 });
      expect(w.stats(1_500)).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
    });

    it("reset empties it", () => {
      const w = createFailureWindow({ type: "time", windowMs: 1_000 });
      w.record(true, true, 0);
      w.reset();
      expect(w.stats(0)).toEqual({ calls: 0, failures: 0, slowCalls: 0 });
    });
  });

  it.each([
    [{ type: "count", size: 0 } as const, "window size 0 must be an integer in 1..100000"],
    [{ type: "count", size: 2.5 } as const, "window size 2.5 must be an integer in 1..100000"],
    [{ type: "time", windowMs: -1 } as const, "windowMs -1 must be a finite number > 0"],
    [
      { type: "time", windowMs: 10, buckets: 0 } as const,
      "buckets 0 must be an integer in 1..1000",
    ],
  ])("rejects %o", (options, message) => {
    expect(() => createFailureWindow(options)).toThrow(new RangeError(message));
  });

  it("rejects an unknown type", () => {
    const bad = { type: "sliding", size: 1 } as unknown as Parameters<
      typeof createFailureWindow
    >[0];
    expect(() => createFailureWindow(bad)).toThrow(
      new RangeError('window type sliding must be "count" or "time"'),
    );
  });
});
