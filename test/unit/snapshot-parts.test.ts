import { describe, expect, it } from "vitest";
import { ipBytes } from "../../src/admin/ip-bytes.js";
import {
  createEjectionHistory,
  EJECTION_HISTORY_SIZE,
} from "../../src/balancer/ejection-history.js";
import { createPickRing } from "../../src/balancer/pick-ring.js";
import {
  createCallCounts,
  snapshotCallCounts,
  sumCallCounts,
} from "../../src/state/call-counts.js";

describe("pick ring", () => {
  it("counts each endpoint's share of the last picks as they happen", () => {
    const ring = createPickRing<{ picks: number }>(4);
    const a = { picks: 0 };
    const b = { picks: 0 };
    expect(ring.counted).toBe(0);
    ring.record(a);
    ring.record(a);
    ring.record(b);
    expect([a.picks, b.picks, ring.counted]).toEqual([2, 1, 3]);
    ring.record(b);
    ring.record(b); // overwrites the first pick of a
    ring.record(b); // and the second
    expect([a.picks, b.picks, ring.counted]).toEqual([0, 4, 4]);
    ring.record(a);
    expect([a.picks, b.picks, ring.counted]).toEqual([1, 3, 4]);
  });

  it.each([0, -1, 1.5, Number.NaN])("rejects a size of %s", (size) => {
    expect(() => createPickRing(size)).toThrow(RangeError);
  });
});

describe("ejection history", () => {
  it("keeps the latest records per address, oldest first, frozen", () => {
    const h = createEjectionHistory();
    h.record({
      type: "ejected",
      address: "a:1",
      reason: "consecutive-failures",
      at: 10,
      ejectionMs: 30_000,
      until: 30_010,
      ejectionCount: 1,
    });
    h.record({ type: "ejection-skipped", address: "b:1", reason: "success-rate", at: 11 });
    h.record({ type: "restored", address: "a:1", at: 30_020 });
    expect(h.of("a:1")).toEqual([
      {
        type: "ejected",
        at: 10,
        reason: "consecutive-failures",
        until: 30_010,
        ejectionMs: 30_000,
      },
      { type: "restored", at: 30_020, reason: null, until: null, ejectionMs: null },
    ]);
    expect(h.of("b:1")).toEqual([
      { type: "ejection-skipped", at: 11, reason: "success-rate", until: null, ejectionMs: null },
    ]);
    expect(h.of("c:1")).toEqual([]);
    expect(Object.isFrozen(h.of("a:1"))).toBe(true);
    expect(Object.isFrozen(h.of("a:1")[0])).toBe(true);
    for (let i = 0; i < EJECTION_HISTORY_SIZE + 5; i++) {
      h.record({ type: "restored", address: "a:1", at: 40_000 + i });
    }
    const kept = h.of("a:1");
    expect(kept).toHaveLength(EJECTION_HISTORY_SIZE);
    expect(kept.at(-1)?.at).toBe(40_000 + EJECTION_HISTORY_SIZE + 4);
  });
});

describe("call counts", () => {
  it("snapshots a tally with in-flight calls and no start time before the first", () => {
    const c = createCallCounts();
    expect(snapshotCallCounts(c)).toEqual({
      started: 0,
      succeeded: 0,
      failed: 0,
      inFlight: 0,
      lastStartedAt: null,
    });
    c.started = 5;
    c.succeeded = 2;
    c.failed = 1;
    c.lastStartedAt = 42;
    expect(snapshotCallCounts(c)).toEqual({
      started: 5,
      succeeded: 2,
      failed: 1,
      inFlight: 2,
      lastStartedAt: 42,
    });
  });

  it("sums tallies, keeping the latest start", () => {
    const a = { started: 3, succeeded: 3, failed: 0, lastStartedAt: 7 };
    const b = { started: 2, succeeded: 0, failed: 1, lastStartedAt: 9 };
    const none = createCallCounts();
    expect(snapshotCallCounts(sumCallCounts([a, none, b]))).toEqual({
      started: 5,
      succeeded: 3,
      failed: 1,
      inFlight: 1,
      lastStartedAt: 9,
    });
    expect(snapshotCallCounts(sumCallCounts([])).lastStartedAt).toBeNull();
  });
});

describe("ipBytes", () => {
  it.each([
    ["127.0.0.1", [127, 0, 0, 1]],
    ["10.1.2.3", [10, 1, 2, 3]],
    ["::1", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ["::", new Array(16).fill(0)],
    ["2001:db8::8:800:200c:417a", [32, 1, 13, 184, 0, 0, 0, 0, 0, 8, 8, 0, 32, 12, 65, 122]],
    ["fe80::1%eth0", [254, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]],
    ["::ffff:127.0.0.1", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1]],
    ["1:2:3:4:5:6:7:8", [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
  ])("reads %s", (host, bytes) => {
    expect([...(ipBytes(host) ?? [])]).toEqual(bytes);
  });

  it.each(["localhost", "example.com", "1.2.3", "", "::g"])("answers undefined for %j", (host) => {
    expect(ipBytes(host)).toBeUndefined();
  });
});
