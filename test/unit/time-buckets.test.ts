import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createTimeBuckets } from "../../src/stats/time-buckets.js";

describe("time buckets", () => {
  it("sums events in the window and drops whole buckets as time passes", () => {
    const b = createTimeBuckets({ windowMs: 1_000, buckets: 10 });
    b.add(0, 0);
    b.add(0, 50);
    b.add(0, 150);
    expect(b.sum(0, 150)).toBe(3);
    // Bucket [0, 100) leaves the window when bucket [1000, 1100) becomes current.
    expect(b.sum(0, 999)).toBe(3);
    expect(b.sum(0, 1_000)).toBe(1);
    expect(b.sum(0, 1_100)).toBe(0);
  });

  it("keeps fields independent", () => {
    const b = createTimeBuckets({ windowMs: 1_000, fields: 3 });
    b.add(0, 10);
    b.add(2, 10);
    b.add(2, 20);
    expect([b.sum(0, 20), b.sum(1, 20), b.sum(2, 20)]).toEqual([1, 0, 2]);
  });

  it("reuses a slot for a new epoch and forgets the old counts", () => {
    const b = createTimeBuckets({ windowMs: 100, buckets: 2 });
    b.add(0, 10);
    b.add(0, 110); // same slot index 0 is epoch 0 -> slot 0; 110 is epoch 2 -> slot 0
    expect(b.sum(0, 110)).toBe(1);
  });

  it("drops an event older than the bucket already in its slot", () => {
    const b = createTimeBuckets({ windowMs: 100, buckets: 2 });
    b.add(0, 110);
    b.add(0, 10);
    expect(b.sum(0, 110)).toBe(1);
  });

  it("reset forgets everything", () => {
    const b = createTimeBuckets({ windowMs: 100 });
    b.add(0, 1);
    b.reset();
    expect(b.sum(0, 1)).toBe(0);
  });

  it("works with negative times", () => {
    const b = createTimeBuckets({ windowMs: 100, buckets: 4 });
    b.add(0, -30);
    expect(b.sum(0, -30)).toBe(1);
    // bucketMs 25: -30 is epoch -2, still in the window at epoch 1 (25..49), gone at epoch 2.
    expect(b.sum(0, 49)).toBe(1);
    expect(b.sum(0, 50)).toBe(0);
  });

  it.each([
    [{ windowMs: 0 }, "windowMs 0 must be a finite number > 0"],
    [{ windowMs: Number.POSITIVE_INFINITY }, "windowMs Infinity must be a finite number > 0"],
    [{ windowMs: 10, buckets: 0 }, "buckets 0 must be an integer in 1..1000"],
    [{ windowMs: 10, buckets: 1.5 }, "buckets 1.5 must be an integer in 1..1000"],
    [{ windowMs: 10, fields: 17 }, "fields 17 must be an integer in 1..16"],
  ])("rejects %o", (options, message) => {
    expect(() => createTimeBuckets(options)).toThrow(new RangeError(message));
  });

  it("matches a naive model of bucketed counting", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 20 }),
        (gaps, buckets) => {
          const windowMs = 1_000;
          const bucketMs = windowMs / buckets;
          const b = createTimeBuckets({ windowMs, buckets });
          const times: number[] = [];
          let now = 0;
          for (const gap of gaps) {
            now += gap;
            times.push(now);
            b.add(0, now);
            const epoch = Math.floor(now / bucketMs);
            const expected = times.filter((t) => Math.floor(t / bucketMs) > epoch - buckets).length;
            expect(b.sum(0, now)).toBe(expected);
          }
        },
      ),
    );
  });
});
