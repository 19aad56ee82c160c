import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCriticalityInterceptor, createMeshTransport } from "../../src/index.js";
import { createAdaptiveLimit } from "../../src/limit/adaptive-limit.js";
import {
  admitsCriticality,
  CRITICALITY_SHARE_DEFAULTS,
  parseCriticality,
  validateCriticalityShares,
} from "../../src/limit/criticality.js";
import type { LimitWindow } from "../../src/limit/limit-algorithm.js";
import { addSample, type SampleWindowState } from "../../src/limit/sample-window.js";
import { createVegasLimit } from "../../src/limit/vegas-limit.js";

function win(avgRttMs: number, maxInFlight: number, didDrop = false): LimitWindow {
  return { endMs: 0, samples: 10, avgRttMs, minRttMs: avgRttMs, maxInFlight, didDrop };
}

describe("sample window", () => {
  const opts = { windowMs: 100, minSamples: 3 };
  it("closes at the first sample past windowMs once it holds minSamples", () => {
    let w: SampleWindowState | undefined;
    const rtts = [10, 20, 30, 40];
    const ends = [10, 50, 120, 130];
    const closed: (LimitWindow | undefined)[] = [];
    rtts.forEach((rtt, i) => {
      const step = addSample(
        w,
        { nowMs: ends[i] ?? 0, rttMs: rtt, inFlight: i + 1, didDrop: i === 1 },
        opts,
      );
      w = step.window;
      closed.push(step.closed);
    });
    // The window started at 10 - 10 = 0; the third sample (at 120, 3 samples) closes it.
    expect(closed.map((c) => c !== undefined)).toEqual([false, false, true, false]);
    expect(closed[2]).toEqual({
      endMs: 120,
      samples: 3,
      avgRttMs: 20,
      minRttMs: 10,
      maxInFlight: 3,
      didDrop: true,
    });
    expect(w?.samples).toBe(1);
  });

  it("stays open past windowMs until minSamples arrive", () => {
    const a = addSample(undefined, { nowMs: 500, rttMs: 1, inFlight: 1, didDrop: false }, opts);
    const b = addSample(a.window, { nowMs: 900, rttMs: 1, inFlight: 1, didDrop: false }, opts);
    expect(b.closed).toBeUndefined();
    expect(b.window?.samples).toBe(2);
  });
});

describe("vegas limit", () => {
  it.each([
    ["no queue: fast growth (+6 log10 limit)", 10, 10, 20, false, 20 + 6 * Math.log10(20)],
    ["queue between threshold and alpha: +log10", 10, 11, 20, false, 20 + Math.log10(20)],
    ["long queue: -log10", 10, 30, 20, false, 20 - Math.log10(20)],
    ["a timeout: -log10", 10, 10, 20, true, 20 - Math.log10(20)],
    ["app-limited: holds", 10, 30, 9, false, 20],
  ] as const)("%s", (_name, noLoad, rtt, inFlight, didDrop, expected) => {
    const v = createVegasLimit({ initialLimit: 20 });
    const s0 = v.update(v.initial(), win(noLoad, 1));
    expect(s0.rttNoLoadMs).toBe(noLoad);
    expect(v.update(s0, win(rtt, inFlight, didDrop)).limit).toBeCloseTo(expected, 10);
  });

  it("re-probes the no-load RTT after probeMultiplier * limit windows", () => {
    const v = createVegasLimit({ initialLimit: 2, maxLimit: 2, probeMultiplier: 1 });
    let s = v.update(v.initial(), win(10, 1));
    s = v.update(s, win(50, 0));
    s = v.update(s, win(50, 0));
    expect(s.rttNoLoadMs).toBe(50);
  });

  it("keeps the limit within [minLimit, maxLimit]", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.array(
          fc.record({
            rtt: fc.double({ min: 0.01, max: 1000, noNaN: true }),
            inFlight: fc.integer({ min: 0, max: 300 }),
            drop: fc.boolean(),
          }),
          { maxLength: 200 },
        ),
        (minLimit, windows) => {
          const v = createVegasLimit({ minLimit, maxLimit: 100, initialLimit: minLimit });
          let s = v.initial();
          for (const w of windows) {
            s = v.update(s, win(w.rtt, w.inFlight, w.drop));
            expect(s.limit).toBeGreaterThanOrEqual(minLimit);
            expect(s.limit).toBeLessThanOrEqual(100);
          }
        },
      ),
    );
  });
});

describe("adaptive limit", () => {
  it("updates the algorithm once per closed window", () => {
    const a = createAdaptiveLimit({ initialLimit: 10, windowMs: 100, minSamples: 2 });
    let s = a.initial();
    let t = 0;
    // Unloaded: 1 ms calls, few in flight: the limit holds at 10.
    for (let i = 0; i < 100; i++) {
      t += 10;
      s = a.onSample(s, { nowMs: t, rttMs: 1, inFlight: 1, didDrop: false });
    }
    expect(a.limitOf(s)).toBe(10);
    // At the limit with the same RTT: it probes upwards.
    for (let i = 0; i < 100; i++) {
      t += 10;
      s = a.onSample(s, { nowMs: t, rttMs: 1, inFlight: a.limitOf(s), didDrop: false });
    }
    const grown = a.limitOf(s);
    expect(grown).toBeGreaterThan(10);
    // Queueing: RTT x4 at the limit: it comes down.
    for (let i = 0; i < 100; i++) {
      t += 10;
      s = a.onSample(s, { nowMs: t, rttMs: 4, inFlight: a.limitOf(s), didDrop: false });
    }
    expect(a.limitOf(s)).toBeLessThan(grown);
    expect(s.lastWindow?.avgRttMs).toBe(4);
  });

  it.each([
    ["cubic", RangeError, 'adaptive.algorithm "cubic"'],
    [{ per: "host" }, RangeError, 'adaptive.per "host"'],
    [{ windowMs: -1 }, RangeError, "adaptive.windowMs -1"],
    [{ minSamples: 0 }, RangeError, "adaptive.minSamples 0"],
    [{ algorithm: "vegas", smoothing: 2 }, RangeError, "vegas: smoothing 2"],
    [{ maxLimit: 0 }, RangeError, "gradient2: maxLimit 0"],
    [7, TypeError, "adaptive 7"],
  ] as const)("rejects %o", (options, type, text) => {
    // biome-ignore lint/suspicious/noExplicitAny: bad input on purpose
    expect(() => createAdaptiveLimit(options as any)).toThrow(type);
    // biome-ignore lint/suspicious/noExplicitAny: bad input on purpose
    expect(() => createAdaptiveLimit(options as any)).toThrow(text);
  });
});

describe("criticality", () => {
  it.each([
    [null, "default"],
    ["", "default"],
    ["critical", "critical"],
    [" Sheddable ", "sheddable"],
    ["DEFAULT", "default"],
  ] as const)("parses %j as %s", (value, expected) => {
    expect(parseCriticality(value)).toBe(expected);
  });

  it("refuses an unknown value with INVALID_ARGUMENT naming it", () => {
    let error: unknown;
    try {
      parseCriticality("urgent");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.InvalidArgument);
    expect((error as ConnectError).rawMessage).toContain('"urgent"');
  });

  it.each([
    // [criticality, in flight, limit, admitted]
    ["critical", 9, 10, true],
    ["critical", 10, 10, false],
    ["default", 9, 10, true],
    ["default", 10, 10, false],
    ["sheddable", 4, 10, true],
    ["sheddable", 5, 10, false],
    ["sheddable", 0, 1, false],
  ] as const)("%s with %i of %i in flight: admitted %s", (c, inFlight, limit, admitted) => {
    expect(admitsCriticality(CRITICALITY_SHARE_DEFAULTS, c, inFlight, limit)).toBe(admitted);
  });

  it("sheds sheddable calls first, then default, then critical, for any shares", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        (a, b, limit, inFlight) => {
          const shares = validateCriticalityShares({
            sheddable: Math.min(a, b),
            default: Math.max(a, b),
          });
          const admitted = (["sheddable", "default", "critical"] as const).map((c) =>
            admitsCriticality(shares, c, inFlight, limit),
          );
          // Monotone: once a lower criticality is admitted, the higher ones are too.
          expect(admitted).toEqual([...admitted].sort((x, y) => Number(x) - Number(y)));
          expect(admitted[2]).toBe(inFlight < limit);
        },
      ),
    );
  });

  it.each([
    [{ sheddable: 0 }, "criticality.sheddable 0"],
    [{ default: 1.5 }, "criticality.default 1.5"],
    [{ urgent: 1 }, 'criticality key "urgent"'],
    [{ sheddable: 0.9, default: 0.5 }, "sheddable <= default <= critical"],
  ])("rejects shares %o", (shares, text) => {
    expect(() => validateCriticalityShares(shares as never)).toThrow(RangeError);
    expect(() => validateCriticalityShares(shares as never)).toThrow(text);
  });
});

describe("client criticality option", () => {
  it.each([
    ["urgent", RangeError, 'criticality "urgent"'],
    [{ "a/b/c": "critical" }, RangeError, 'criticality key "a/b/c"'],
    [{ "pkg.Service": "urgent" }, RangeError, 'criticality["pkg.Service"] "urgent"'],
    [7, TypeError, "criticality 7"],
  ] as const)("rejects %j when the transport is built", (option, type, text) => {
    const build = () =>
      createMeshTransport({ target: "127.0.0.1:1", logger: false, criticality: option as never });
    expect(build).toThrow(type);
    expect(build).toThrow(text);
  });

  it("accepts one criticality or a table", () => {
    expect(() => createCriticalityInterceptor("sheddable")).not.toThrow();
    expect(() =>
      createCriticalityInterceptor({ "pkg.Service": "sheddable", "pkg.Service/Pay": "critical" }),
    ).not.toThrow();
  });
});
