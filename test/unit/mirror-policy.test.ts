import { describe, expect, it } from "vitest";
import {
  createMirrorPolicy,
  decideMirror,
  MIRROR_POLICY_DEFAULTS,
  type MirrorPolicyOptions,
  mirrorShareOf,
} from "../../src/index.js";
import { seededRandom } from "./seeded-random.js";

const ECHO = "test.v1.EchoService/Echo";

describe("createMirrorPolicy", () => {
  it("fills the documented defaults", () => {
    const p = createMirrorPolicy();
    expect(p.share).toBe(1);
    expect(p.maxInFlight).toBe(MIRROR_POLICY_DEFAULTS.maxInFlight);
    expect(p.maxInFlight).toBe(16);
    expect(p.timeoutMs).toBe(1_000);
    expect(p.random).toBe(Math.random);
    expect(p.methods.size).toBe(0);
  });

  it.each<[string, MirrorPolicyOptions, RegExp, typeof RangeError | typeof TypeError]>([
    ["share > 1", { share: 1.5 }, /share 1.5 must be a number in 0..1/, RangeError],
    ["share < 0", { share: -0.1 }, /share -0.1 must be/, RangeError],
    ["share NaN", { share: Number.NaN }, /share NaN must be/, RangeError],
    ["share string", { share: "0.5" as unknown as number }, /share 0.5 must be/, RangeError],
    [
      "method share",
      { methods: { [ECHO]: 2 } },
      /methods\["test.v1.EchoService\/Echo"\] 2/,
      RangeError,
    ],
    [
      "method name",
      { methods: { Echo: 0.5 } },
      /methods: "Echo" must be "package.Service\/Method"/,
      RangeError,
    ],
    [
      "methods type",
      { methods: 3 as unknown as Record<string, number> },
      /methods must be an object/,
      TypeError,
    ],
    ["maxInFlight 0", { maxInFlight: 0 }, /maxInFlight 0 must be an integer >= 1/, RangeError],
    ["maxInFlight 1.5", { maxInFlight: 1.5 }, /maxInFlight 1.5 must be an integer/, RangeError],
    ["timeoutMs 0", { timeoutMs: 0 }, /timeoutMs 0 must be a finite number > 0/, RangeError],
    [
      "timeoutMs Infinity",
      { timeoutMs: Number.POSITIVE_INFINITY },
      /timeoutMs Infinity/,
      RangeError,
    ],
    ["random", { random: 0.5 as unknown as () => number }, /random must be a function/, TypeError],
  ])("rejects %s", (_name, options, message, type) => {
    expect(() => createMirrorPolicy(options)).toThrow(type);
    expect(() => createMirrorPolicy(options)).toThrow(message);
  });

  it("accepts a leading slash and service wildcards", () => {
    const p = createMirrorPolicy({ methods: { [`/${ECHO}`]: 0.5, "test.v1.EchoService/*": 0.2 } });
    expect([...p.methods.keys()]).toEqual([ECHO, "test.v1.EchoService/*"]);
  });
});

describe("mirrorShareOf", () => {
  const p = createMirrorPolicy({
    share: 0.1,
    methods: { [ECHO]: 0.5, "test.v1.EchoService/*": 0.2, "a.B/*": 0 },
  });
  it.each([
    [ECHO, 0.5], // exact wins over the wildcard
    ["test.v1.EchoService/EchoBidi", 0.2], // the service's wildcard
    ["a.B/C", 0], // a wildcard of 0 turns a service off
    ["other.v1.Svc/Call", 0.1], // the default share
  ])("%s -> %f", (method, share) => {
    expect(mirrorShareOf(p, method)).toBe(share);
  });
});

describe("decideMirror", () => {
  const p = createMirrorPolicy({ share: 0.25, maxInFlight: 2 });
  it.each([
    // stream, inFlight, draw -> decision
    [false, 0, 0, { action: "send" }],
    [false, 1, 0.2499, { action: "send" }],
    [false, 0, 0.25, { action: "skip", reason: "not-sampled" }],
    [false, 0, 0.99, { action: "skip", reason: "not-sampled" }],
    [false, 2, 0.1, { action: "drop", reason: "in-flight-limit" }],
    [false, 5, 0.1, { action: "drop", reason: "in-flight-limit" }],
    // Not sampled is a skip even when the bound is full: only sampled calls count as drops.
    [false, 2, 0.5, { action: "skip", reason: "not-sampled" }],
    [true, 0, 0, { action: "skip", reason: "stream" }],
  ])("stream %s, %i in flight, draw %f", (stream, inFlight, draw, want) => {
    expect(decideMirror(p, { method: ECHO, stream }, inFlight, draw)).toEqual(want);
  });

  it("share 0 never sends and share 1 always does (draws are in [0, 1))", () => {
    const off = createMirrorPolicy({ share: 0 });
    const all = createMirrorPolicy({ share: 1 });
    for (const draw of [0, 0.5, 0.999999]) {
      expect(decideMirror(off, { method: ECHO, stream: false }, 0, draw).action).toBe("skip");
      expect(decideMirror(all, { method: ECHO, stream: false }, 0, draw).action).toBe("send");
    }
  });

  it("sends about share of the calls for uniform draws", () => {
    const policy = createMirrorPolicy({ share: 0.3, maxInFlight: 1_000 });
    const random = seededRandom(17);
    let sent = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      if (decideMirror(policy, { method: ECHO, stream: false }, 0, random()).action === "send") {
        sent++;
      }
    }
    // mulberry32 is uniform enough that 20k draws land within 2% of the share.
    expect(sent / n).toBeGreaterThan(0.28);
    expect(sent / n).toBeLessThan(0.32);
  });
});
