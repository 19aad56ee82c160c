import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  createOutlierDetector,
  type OutlierDetectorOptions,
  type OutlierEvent,
} from "../../src/balancer/outlier-detector.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";

const OK = { ok: true } as const;
const FAIL = { ok: false, code: Code.Unavailable } as const;

function fleet(n: number) {
  return Array.from({ length: n }, (_, i) => createEndpoint(`h${i}:80`));
}

function detector(n: number, options: OutlierDetectorOptions = {}) {
  const events: OutlierEvent[] = [];
  const eps = fleet(n);
  const d = createOutlierDetector({
    successRate: false,
    ...options,
    onEvent: (e) => events.push(e),
  });
  d.setEndpoints(eps);
  const fail = (i: number, times: number, now: number) => {
    for (let k = 0; k < times; k++) d.record(eps[i]!.address, FAIL, now);
  };
  return { d, eps, events, fail };
}

describe("outlier detector", () => {
  describe("consecutive failures", () => {
    it("ejects after 5 consecutive failures (default) for 30 s", () => {
      const { d, eps, events, fail } = detector(4);
      fail(0, 4, 100);
      expect(d.isEjected(eps[0]!.address, 100)).toBe(false);
      fail(0, 1, 100);
      expect(d.isEjected(eps[0]!.address, 100)).toBe(true);
      expect(events).toEqual([
        {
          type: "ejected",
          address: "h0:80",
          reason: "consecutive-failures",
          at: 100,
          ejectionMs: 30_000,
          until: 30_100,
          ejectionCount: 1,
        },
      ]);
      expect(d.health("h0:80", 100)).toEqual({ state: "ejected", until: 30_100, ejectionCount: 1 });
      expect(d.nextChangeAt()).toBe(30_100);
    });

    it("resets the run on a success, and on a non-failure error code", () => {
      const { d, eps, fail } = detector(4);
      fail(0, 4, 0);
      d.record(eps[0]!.address, OK, 0);
      fail(0, 4, 0);
      d.record(eps[0]!.address, { ok: false, code: Code.NotFound }, 0);
      fail(0, 4, 0);
      expect(d.isEjected(eps[0]!.address, 0)).toBe(false);
    });

    it("ignores CANCELED outcomes and unknown addresses", () => {
      const { d, eps, fail } = detector(4);
      fail(0, 4, 0);
      d.record(eps[0]!.address, { ok: false, code: Code.Canceled }, 0);
      d.record("nobody:1", FAIL, 0);
      fail(0, 1, 0);
      expect(d.isEjected(eps[0]!.address, 0)).toBe(true);
      expect(d.health("nobody:1", 0)).toBeUndefined();
      expect(d.isEjected("nobody:1", 0)).toBe(false);
    });

    it("uses a configurable code set and count, 0 turning it off", () => {
      const custom = detector(4, {
        consecutiveFailures: 2,
        failureCodes: [Code.ResourceExhausted],
      });
      custom.fail(0, 10, 0); // UNAVAILABLE is not in the set
      expect(custom.d.isEjected("h0:80", 0)).toBe(false);
      custom.d.record("h0:80", { ok: false, code: Code.ResourceExhausted }, 0);
      custom.d.record("h0:80", { ok: false, code: Code.ResourceExhausted }, 0);
      expect(custom.d.isEjected("h0:80", 0)).toBe(true);

      const off = detector(4, { consecutiveFailures: 0 });
      off.fail(0, 100, 0);
      expect(off.d.isEjected("h0:80", 0)).toBe(false);
    });
  });

  describe("probing after ejection", () => {
    it("restores on the first success once the ejection time is over", () => {
      const { d, eps, events, fail } = detector(4);
      fail(0, 5, 0);
      expect(d.filter(eps, 29_999).map((e) => e.address)).toEqual(["h1:80", "h2:80", "h3:80"]);
      expect(d.filter(eps, 30_000)).toEqual(eps);
      expect(d.health("h0:80", 30_000)).toEqual({ state: "probing", ejectionCount: 1 });
      d.record("h0:80", OK, 30_001);
      expect(d.health("h0:80", 30_001)).toEqual({ state: "healthy", ejectionCount: 1 });
      expect(events.at(-1)).toEqual({ type: "restored", address: "h0:80", at: 30_001 });
    });

    it("re-ejects on a failed probe for base x count, capped at maxEjectionMs", () => {
      const { d, events, fail } = detector(4, { baseEjectionMs: 100_000, maxEjectionMs: 250_000 });
      fail(0, 5, 0);
      expect(d.health("h0:80", 100_000)).toEqual({ state: "probing", ejectionCount: 1 });
      fail(0, 1, 100_000);
      expect(events.at(-1)).toMatchObject({
        reason: "probe-failed",
        ejectionMs: 200_000,
        ejectionCount: 2,
      });
      fail(0, 1, 300_000);
      expect(events.at(-1)).toMatchObject({
        ejectionMs: 250_000,
        until: 550_000,
        ejectionCount: 3,
      });
    });

    it("ignores late outcomes while ejected", () => {
      const { d, events, fail } = detector(4);
      fail(0, 5, 0);
      d.record("h0:80", OK, 10);
      fail(0, 10, 10);
      expect(events).toHaveLength(1);
      expect(d.health("h0:80", 10)).toMatchObject({ state: "ejected" });
    });

    it("forgives one ejection per healthy interval", () => {
      const { d, events, fail } = detector(4, { intervalMs: 1_000 });
      fail(0, 5, 0);
      d.record("h0:80", OK, 30_000); // restored, count 1
      d.evaluate(31_000); // healthy interval: count 0
      expect(d.health("h0:80", 31_000)).toEqual({ state: "healthy", ejectionCount: 0 });
      fail(0, 5, 31_000);
      expect(events.at(-1)).toMatchObject({ ejectionMs: 30_000, ejectionCount: 1 });
    });
  });

  describe("ejection cap", () => {
    it.each([
      [1, 50, 0],
      [2, 50, 1],
      [3, 50, 1],
      [4, 50, 2],
      [10, 50, 5],
      [4, 100, 3], // always keeps one
      [10, 0, 0],
      [10, 25, 2],
    ])("with %i endpoints and maxEjectionPercent %i, ejects at most %i", (n, pct, max) => {
      const { d, eps, events, fail } = detector(n, { maxEjectionPercent: pct });
      for (let i = 0; i < n; i++) fail(i, 5, 0);
      expect(eps.filter((e) => d.isEjected(e.address, 0))).toHaveLength(max);
      expect(d.filter(eps, 0).length).toBeGreaterThanOrEqual(1);
      expect(events.filter((e) => e.type === "ejection-skipped").length).toBeGreaterThanOrEqual(
        n - max,
      );
    });

    it("frees a slot when an ejection ends", () => {
      const { d, fail } = detector(2);
      fail(0, 5, 0);
      fail(1, 5, 0);
      expect(d.isEjected("h1:80", 0)).toBe(false);
      fail(1, 5, 30_000); // h0 is probing now, so h1 may go
      expect(d.isEjected("h1:80", 30_000)).toBe(true);
    });
  });

  describe("success rate", () => {
    const sr = { successRate: { minimumHosts: 3, requestVolume: 10, stdevFactor: 1 } };

    it("ejects endpoints below mean - stdevFactor x stdev at the end of an interval", () => {
      const { d, eps, events } = detector(4, { ...sr, consecutiveFailures: 0, intervalMs: 1_000 });
      d.filter(eps, 0); // starts the interval
      for (let i = 0; i < 4; i++) {
        for (let k = 0; k < 10; k++)
          d.record(eps[i]!.address, i === 3 && k % 2 === 0 ? FAIL : OK, 500);
      }
      expect(events).toHaveLength(0);
      d.filter(eps, 1_000); // lazily evaluates
      expect(events).toEqual([
        expect.objectContaining({ type: "ejected", address: "h3:80", reason: "success-rate" }),
      ]);
    });

    it("skips endpoints below requestVolume and needs minimumHosts", () => {
      const { d, eps, events } = detector(4, { ...sr, consecutiveFailures: 0, intervalMs: 1_000 });
      for (let i = 0; i < 2; i++) for (let k = 0; k < 10; k++) d.record(eps[i]!.address, OK, 0);
      for (let k = 0; k < 10; k++) d.record(eps[2]!.address, FAIL, 0);
      for (let k = 0; k < 9; k++) d.record(eps[3]!.address, FAIL, 0);
      d.evaluate(500);
      // h2 is judged among three hosts and ejected; h3 lacks volume.
      expect(events.map((e) => e.type === "ejected" && e.address)).toEqual(["h2:80"]);
      const two = detector(4, { ...sr, consecutiveFailures: 0 });
      for (let k = 0; k < 10; k++) two.d.record("h0:80", OK, 0);
      for (let k = 0; k < 10; k++) two.d.record("h1:80", FAIL, 0);
      two.d.evaluate(1);
      expect(two.events).toHaveLength(0);
    });

    it("ejects nobody when all rates are equal", () => {
      const { d, eps, events } = detector(5, { ...sr, consecutiveFailures: 0 });
      for (const e of eps) for (let k = 0; k < 10; k++) d.record(e.address, k < 5 ? FAIL : OK, 0);
      d.evaluate(1);
      expect(events).toHaveLength(0);
    });

    it("is on by default with Envoy's parameters", () => {
      const events: OutlierEvent[] = [];
      const d = createOutlierDetector({ consecutiveFailures: 0, onEvent: (e) => events.push(e) });
      const eps = fleet(6);
      d.setEndpoints(eps);
      for (const [i, e] of eps.entries()) {
        for (let k = 0; k < 100; k++) d.record(e.address, i === 0 && k < 50 ? FAIL : OK, 0);
      }
      d.evaluate(1);
      expect(events).toEqual([
        expect.objectContaining({ address: "h0:80", reason: "success-rate" }),
      ]);
    });
  });

  describe("failure percentage", () => {
    it("ejects endpoints whose failure ratio reaches the threshold", () => {
      const { d, eps, events } = detector(3, {
        consecutiveFailures: 0,
        failurePercentage: { threshold: 0.5, minimumHosts: 2, requestVolume: 4 },
      });
      for (let k = 0; k < 4; k++) {
        d.record(eps[0]!.address, OK, 0);
        d.record(eps[1]!.address, k < 2 ? FAIL : OK, 0);
        d.record(eps[2]!.address, k < 1 ? FAIL : OK, 0);
      }
      d.evaluate(1);
      expect(events).toEqual([
        expect.objectContaining({ address: "h1:80", reason: "failure-percentage" }),
      ]);
    });
  });

  it("keeps state for endpoints that stay and drops removed ones", () => {
    const { d, eps, fail } = detector(4);
    fail(0, 5, 0);
    d.setEndpoints([eps[0]!, eps[2]!]);
    expect(d.isEjected("h0:80", 1)).toBe(true);
    expect(d.health("h1:80", 1)).toBeUndefined();
    d.setEndpoints([]);
    expect(d.nextChangeAt()).toBeUndefined();
  });

  it("returns a frozen filtered list", () => {
    const { d, eps } = detector(2);
    expect(Object.isFrozen(d.filter(eps, 0))).toBe(true);
  });

  it.each<[OutlierDetectorOptions, string]>([
    [{ consecutiveFailures: -1 }, "consecutiveFailures -1 must be an integer >= 0"],
    [{ intervalMs: 0 }, "intervalMs 0 must be a finite number > 0"],
    [{ baseEjectionMs: -5 }, "baseEjectionMs -5 must be a finite number > 0"],
    [{ maxEjectionMs: 10 }, "maxEjectionMs 10 must be a finite number >= baseEjectionMs 30000"],
    [{ maxEjectionPercent: 101 }, "maxEjectionPercent 101 must be in 0..100"],
    [{ failureCodes: [0] }, "failure code 0 must be an integer in 1..16"],
    [{ successRate: { minimumHosts: 0 } }, "successRate.minimumHosts 0 must be an integer >= 1"],
    [
      { successRate: { stdevFactor: -1 } },
      "successRate.stdevFactor -1 must be a finite number >= 0",
    ],
    [{ failurePercentage: { threshold: 0 } }, "failurePercentage.threshold 0 must be in (0, 1]"],
    [
      { failurePercentage: { requestVolume: 0 } },
      "failurePercentage.requestVolume 0 must be an integer >= 1",
    ],
  ])("rejects %o", (options, message) => {
    expect(() => createOutlierDetector(options)).toThrow(new RangeError(message));
  });
});
