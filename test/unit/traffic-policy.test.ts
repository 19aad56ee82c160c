import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createBalancer } from "../../src/balancer/balancer.js";
import type { BalancerEvent } from "../../src/balancer/balancer-events.js";
import type { Picker } from "../../src/balancer/picker.js";
import { createRoundRobinPicker } from "../../src/balancer/round-robin.js";
import type { TrafficEvent } from "../../src/balancer/traffic-events.js";
import { createTrafficPicker } from "../../src/balancer/traffic-picker.js";
import {
  chooseGroup,
  REST_GROUP,
  resolveTrafficPolicy,
  subsetOf,
  type TrafficPolicy,
} from "../../src/balancer/traffic-policy.js";
import { createTrafficRouting } from "../../src/balancer/traffic-routing.js";
import { createEndpoint, createEndpointSet, type Endpoint } from "../../src/discovery/endpoint.js";
import type { ResolverListener } from "../../src/discovery/resolver.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { seededRandom } from "./seeded-random.js";

const N = 10_000;

const ep = (address: string, metadata: Record<string, string>) =>
  createEndpoint(address, { metadata });

const headers = (init: Record<string, string>) => new Headers(init);

const CANARY: TrafficPolicy = {
  subsets: [{ name: "canary", match: { version: "1.5.0" }, percent: 10 }],
  routes: [{ header: "x-canary", value: "1", subset: "canary" }],
};

function share(counts: Map<string, number>, key: string, total = N): number {
  return ((counts.get(key) ?? 0) / total) * 100;
}

function count<T>(n: number, f: () => T): Map<T, number> {
  const m = new Map<T, number>();
  for (let i = 0; i < n; i++) {
    const k = f();
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

describe("resolveTrafficPolicy validates at construction", () => {
  const bad: [string, unknown, RegExp][] = [
    ["not an object", null, /must be an object/],
    ["empty subset name", { subsets: [{ name: "", match: { v: "1" } }] }, /subset name ""/],
    ["reserved name", { subsets: [{ name: "rest", match: { v: "1" } }] }, /other than "rest"/],
    [
      "repeated name",
      {
        subsets: [
          { name: "a", match: { v: "1" } },
          { name: "a", match: { v: "2" } },
        ],
      },
      /"a" is repeated/,
    ],
    ["empty match", { subsets: [{ name: "a", match: {} }] }, /match \{\} must map/],
    ["non-string match", { subsets: [{ name: "a", match: { v: 1 } }] }, /must map metadata/],
    ["percent < 0", { subsets: [{ name: "a", match: { v: "1" }, percent: -1 }] }, /percent -1/],
    ["percent > 100", { subsets: [{ name: "a", match: { v: "1" }, percent: 101 }] }, /101/],
    ["percent NaN", { subsets: [{ name: "a", match: { v: "1" }, percent: Number.NaN }] }, /NaN/],
    [
      "sum > 100",
      {
        subsets: [
          { name: "a", match: { v: "1" }, percent: 60 },
          { name: "b", match: { v: "2" }, percent: 50 },
        ],
      },
      /sum to 110/,
    ],
    [
      "bad onEmpty",
      { subsets: [{ name: "a", match: { v: "1" }, onEmpty: "drop" }] },
      /onEmpty "drop"/,
    ],
    [
      "route to unknown subset",
      { routes: [{ header: "x-canary", subset: "canary" }] },
      /"canary", which the policy does not define/,
    ],
    [
      "bad header name",
      {
        subsets: [{ name: "a", match: { v: "1" } }],
        routes: [{ header: "x canary", subset: "a" }],
      },
      /route header "x canary"/,
    ],
    ["zone empty", { zoneAware: { zone: "" } }, /zone "" must be a non-empty string/],
    ["minEndpoints", { zoneAware: { zone: "a", minEndpoints: 1.5 } }, /minEndpoints 1.5/],
    [
      "client share < 0",
      { zoneAware: { zone: "a", clientShares: { a: 1, b: -1 } } },
      /clientShares\["b"\] -1/,
    ],
    [
      "own zone has no client share",
      { zoneAware: { zone: "a", clientShares: { b: 1 } } },
      /give zone "a" a share > 0/,
    ],
  ];
  it.each(bad)("%s", (_, policy, message) => {
    expect(() => resolveTrafficPolicy(policy as TrafficPolicy)).toThrow(message);
  });

  it("fills defaults and freezes a copy", () => {
    const input = {
      subsets: [{ name: "canary", match: { version: "1.5.0" }, percent: 10 }],
      routes: [{ header: "X-Canary", value: "1", subset: "canary" }],
      zoneAware: { zone: "a" },
    };
    const p = resolveTrafficPolicy(input);
    input.subsets[0]!.percent = 90;
    expect(p.subsets[0]).toEqual({
      name: "canary",
      match: { version: "1.5.0" },
      percent: 10,
      onEmpty: "fallback",
    });
    expect(p.restPercent).toBe(90);
    expect(p.routes[0]?.header).toBe("x-canary");
    expect(p.zoneAware).toEqual({
      zone: "a",
      label: "zone",
      minEndpoints: 6,
      clientShares: undefined,
    });
    expect(Object.isFrozen(p) && Object.isFrozen(p.subsets[0]!.match)).toBe(true);
  });

  it("assigns an endpoint to the first subset it fully matches", () => {
    const p = resolveTrafficPolicy({
      subsets: [
        { name: "canary-a", match: { version: "1.5.0", zone: "a" } },
        { name: "canary", match: { version: "1.5.0" } },
      ],
    });
    expect(subsetOf(p, ep("x:1", { version: "1.5.0", zone: "a" }))).toBe("canary-a");
    expect(subsetOf(p, ep("x:1", { version: "1.5.0", zone: "b" }))).toBe("canary");
    expect(subsetOf(p, ep("x:1", { version: "1.4.0" }))).toBe(REST_GROUP);
    expect(subsetOf(p, ep("x:1", {}))).toBe(REST_GROUP);
  });
});

describe("chooseGroup: header routes, then the percent split", () => {
  const p = resolveTrafficPolicy(CANARY);

  it("sends 10% to the canary within ±2 points over 10,000 draws", () => {
    const random = seededRandom(1);
    const counts = count(N, () => chooseGroup(p, undefined, random));
    expect(Math.abs(share(counts, "canary") - 10)).toBeLessThanOrEqual(2);
    expect(Math.abs(share(counts, REST_GROUP) - 90)).toBeLessThanOrEqual(2);
  });

  it("splits three ways by percent", () => {
    const three = resolveTrafficPolicy({
      subsets: [
        { name: "v2", match: { version: "2" }, percent: 25 },
        { name: "v3", match: { version: "3" }, percent: 5 },
      ],
    });
    const random = seededRandom(7);
    const counts = count(N, () => chooseGroup(three, undefined, random));
    expect(Math.abs(share(counts, "v2") - 25)).toBeLessThanOrEqual(2);
    expect(Math.abs(share(counts, "v3") - 5)).toBeLessThanOrEqual(2);
    expect(Math.abs(share(counts, REST_GROUP) - 70)).toBeLessThanOrEqual(2);
  });

  const routed: [string, Record<string, string>, string][] = [
    ["matching value", { "x-canary": "1" }, "canary"],
    ["header names are case-insensitive", { "X-Canary": "1" }, "canary"],
  ];
  it.each(routed)("routes by header: %s", (_, h, group) => {
    // random() = 0.99 would draw the rest: the route must win over the draw.
    expect(chooseGroup(p, headers(h), () => 0.99)).toBe(group);
  });

  it("a header with another value is not routed and takes the draw", () => {
    expect(chooseGroup(p, headers({ "x-canary": "0" }), () => 0.99)).toBe(REST_GROUP);
    expect(chooseGroup(p, headers({ "x-canary": "0" }), () => 0.05)).toBe("canary");
  });

  it("a route without a value matches any value; the first matching route wins", () => {
    const q = resolveTrafficPolicy({
      subsets: [
        { name: "beta", match: { track: "beta" } },
        { name: "canary", match: { version: "1.5.0" } },
      ],
      routes: [
        { header: "x-beta", subset: "beta" },
        { header: "x-canary", value: "1", subset: "canary" },
      ],
    });
    expect(chooseGroup(q, headers({ "x-beta": "anything" }), () => 0)).toBe("beta");
    expect(chooseGroup(q, headers({ "x-beta": "", "x-canary": "1" }), () => 0)).toBe("beta");
    expect(chooseGroup(q, headers({ "x-canary": "1" }), () => 0)).toBe("canary");
    // percent 0: reachable by routes only.
    expect(chooseGroup(q, headers({}), () => 0)).toBe(REST_GROUP);
  });

  it("percents summing to 100 never draw the rest", () => {
    const full = resolveTrafficPolicy({
      subsets: [
        { name: "a", match: { v: "a" }, percent: 33.3 },
        { name: "b", match: { v: "b" }, percent: 66.7 },
      ],
    });
    expect(chooseGroup(full, undefined, () => 0.999999999)).toBe("b");
    expect(chooseGroup(full, undefined, () => 0)).toBe("a");
  });
});

const fleet: Endpoint[] = [
  ep("a1:1", { zone: "a", version: "1.4.0" }),
  ep("a2:1", { zone: "a", version: "1.4.0" }),
  ep("a3:1", { zone: "a", version: "1.5.0" }),
  ep("b1:1", { zone: "b", version: "1.4.0" }),
  ep("b2:1", { zone: "b", version: "1.4.0" }),
  ep("b3:1", { zone: "b", version: "1.5.0" }),
];

function build(
  policy: TrafficPolicy,
  ready: readonly Endpoint[],
  all: readonly Endpoint[] = fleet,
  seed = 3,
) {
  const random = seededRandom(seed);
  const made = createTrafficPicker({
    target: "t",
    policy: resolveTrafficPolicy(policy),
    ready,
    all,
    build: (eps): Picker => createRoundRobinPicker(eps, { random }),
    random,
  });
  return made;
}

function picks(picker: Picker, n = N, header?: Headers, avoid?: string[]): Map<string, number> {
  return count(n, () => {
    const r = picker.pick({ ...(header ? { header } : {}), ...(avoid ? { avoid } : {}) });
    return r?.endpoint.address ?? "none";
  });
}

const sumOf = (counts: Map<string, number>, prefix: string) =>
  [...counts].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);

describe("traffic picker: subsets over real pickers", () => {
  it("weighted split: 10% of picks reach the 1.5.0 endpoints (±2 points)", () => {
    const { picker, notes } = build(CANARY, fleet);
    const counts = picks(picker);
    const canary = (counts.get("a3:1") ?? 0) + (counts.get("b3:1") ?? 0);
    expect(Math.abs((canary / N) * 100 - 10)).toBeLessThanOrEqual(2);
    expect(notes).toEqual([{ kind: "subset", subset: "canary", ready: 2, fallback: "none" }]);
  });

  it("header route: x-canary: 1 goes only to 1.5.0", () => {
    const { picker } = build(CANARY, fleet);
    const counts = picks(picker, 1000, headers({ "x-canary": "1" }));
    expect([...counts.keys()].sort()).toEqual(["a3:1", "b3:1"]);
  });

  it("a subset with no ready endpoint falls back to the rest and says so", () => {
    const ready = fleet.filter((e) => e.metadata.version !== "1.5.0");
    const { picker, notes } = build(CANARY, ready);
    const counts = picks(picker, 1000, headers({ "x-canary": "1" }));
    expect(sumOf(counts, "a") + sumOf(counts, "b")).toBe(1000);
    expect(counts.has("a3:1") || counts.has("b3:1")).toBe(false);
    expect(notes).toEqual([{ kind: "subset", subset: "canary", ready: 0, fallback: "rest" }]);
  });

  it("the rest with no ready endpoint falls back to any ready endpoint", () => {
    const ready = fleet.filter((e) => e.metadata.version === "1.5.0");
    const { picker } = build(CANARY, ready);
    const counts = picks(picker, 1000);
    expect((counts.get("a3:1") ?? 0) + (counts.get("b3:1") ?? 0)).toBe(1000);
  });

  it('onEmpty "fail" fails the call with UNAVAILABLE naming the subset', () => {
    const ready = fleet.filter((e) => e.metadata.version !== "1.5.0");
    const { picker, notes } = build(
      {
        subsets: [{ name: "canary", match: { version: "1.5.0" }, onEmpty: "fail" }],
        routes: [{ header: "x-canary", subset: "canary" }],
      },
      ready,
    );
    let error: unknown;
    try {
      picker.pick({ header: headers({ "x-canary": "1" }) });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).rawMessage).toBe(
      'subset "canary" of target "t" has no ready endpoint',
    );
    // Calls not routed to it are unaffected.
    expect(picker.pick({ header: headers({}) })?.endpoint.metadata.version).toBe("1.4.0");
    expect(notes).toEqual([{ kind: "subset", subset: "canary", ready: 0, fallback: "fail" }]);
  });

  it("picks nothing when no endpoint is ready", () => {
    const { picker } = build(CANARY, []);
    expect(picker.pick()).toBeUndefined();
  });
});

const zoned: TrafficPolicy = { zoneAware: { zone: "a", minEndpoints: 1 } };

describe("traffic picker: zone-aware routing", () => {
  it("keeps every pick in the client's zone while it is healthy", () => {
    const counts = picks(build(zoned, fleet).picker);
    expect(sumOf(counts, "a")).toBe(N);
  });

  it("spills over when the local zone's healthy share is below its load share", () => {
    // a keeps 1 of 3 healthy: upstream[a] = 1/4, local[a] = 3/6 → stay 50%.
    const ready = fleet.filter((e) => e.address !== "a1:1" && e.address !== "a2:1");
    const { picker, notes } = build(zoned, ready);
    const counts = picks(picker);
    expect(Math.abs(share(counts, "a3:1") - 50)).toBeLessThanOrEqual(2);
    expect(Math.abs((sumOf(counts, "b") / N) * 100 - 50)).toBeLessThanOrEqual(2);
    expect(notes[0]).toMatchObject({ kind: "zone", group: "rest", decision: { mode: "spill" } });
  });

  it("fails over entirely when the local zone has no healthy endpoint", () => {
    const ready = fleet.filter((e) => e.metadata.zone !== "a");
    const counts = picks(build(zoned, ready).picker);
    expect(sumOf(counts, "b")).toBe(N);
  });

  it("an attempt avoiding every local endpoint may use the other zones", () => {
    const counts = picks(build(zoned, fleet).picker, 300, undefined, ["a1:1", "a2:1", "a3:1"]);
    expect(sumOf(counts, "b")).toBe(300);
  });

  it("applies inside the chosen subset: canary calls prefer the local canary", () => {
    const policy: TrafficPolicy = { ...CANARY, zoneAware: { zone: "a", minEndpoints: 1 } };
    const counts = picks(build(policy, fleet).picker, 1000, headers({ "x-canary": "1" }));
    expect(counts.get("a3:1")).toBe(1000);
    // The local canary ejected: its calls fail over to the other zone's canary.
    const ready = fleet.filter((e) => e.address !== "a3:1");
    const after = picks(build(policy, ready).picker, 1000, headers({ "x-canary": "1" }));
    expect(after.get("b3:1")).toBe(1000);
  });

  it("is off below minEndpoints (default 6): picks spread over every zone", () => {
    const small = fleet.slice(0, 2).concat(fleet.slice(3, 5));
    const counts = picks(build({ zoneAware: { zone: "a" } }, small, small).picker, 1000);
    expect(sumOf(counts, "a")).toBe(500);
    expect(sumOf(counts, "b")).toBe(500);
  });
});

describe("traffic routing: snapshots and events", () => {
  const roundRobin = (eps: readonly Endpoint[]) => createRoundRobinPicker(eps);

  it("without a policy builds the plain picker", () => {
    const routing = createTrafficRouting({ target: "t", emit: () => {} });
    const plain = routing.wrap(fleet, fleet, roundRobin);
    expect(picks(plain, 600).size).toBe(6);
  });

  it("reports fallbacks and zone changes once, when they change", () => {
    const events: TrafficEvent[] = [];
    const routing = createTrafficRouting({
      target: "t",
      policy: { ...CANARY, zoneAware: { zone: "a", minEndpoints: 1 } },
      random: seededRandom(5),
      emit: (e) => events.push(e),
    });
    const noCanary = fleet.filter((e) => e.metadata.version !== "1.5.0");
    routing.wrap(fleet, fleet, roundRobin);
    routing.wrap(fleet, fleet, roundRobin);
    routing.wrap(noCanary, fleet, roundRobin);
    routing.wrap(noCanary, fleet, roundRobin);
    routing.wrap(fleet, fleet, roundRobin);
    const summary = events.map((e) =>
      e.type === "zone-routing"
        ? `${e.type} ${e.group} ${e.mode} ${e.localPercent}`
        : e.type === "subset-fallback"
          ? `${e.type} ${e.subset} ${e.to}`
          : `${e.type}`,
    );
    expect(summary).toEqual([
      "zone-routing rest local 100",
      "zone-routing canary local 100",
      "subset-fallback canary rest",
      "zone-routing canary local 100",
      "subset-restored",
    ]);
  });

  it("set swaps the snapshot, or throws and keeps the old one", () => {
    const events: TrafficEvent[] = [];
    const routing = createTrafficRouting({ target: "t", emit: (e) => events.push(e) });
    routing.set(CANARY);
    expect(routing.policy()?.subsets[0]?.name).toBe("canary");
    expect(() => routing.set({ subsets: [{ name: "x", match: {} }] })).toThrow(TypeError);
    expect(routing.policy()?.subsets[0]?.name).toBe("canary");
    routing.set(undefined);
    expect(routing.policy()).toBeUndefined();
    expect(events.map((e) => e.type)).toEqual(["policy-changed", "policy-changed"]);
    expect(events[0]).toMatchObject({ subsets: ["canary=10%"], routes: 1, zone: undefined });
  });
});

describe("balancer with a traffic policy (fake clock, no network)", () => {
  function setup(policy: TrafficPolicy) {
    const clock = createFakeClock(0);
    let listener: ResolverListener | undefined;
    const events: BalancerEvent[] = [];
    const balancer = createBalancer({
      target: "t",
      resolver: {
        start: (l) => {
          listener = l;
        },
        close() {},
      },
      createSubchannel: (e) => ({ address: e.address, close() {} }),
      policy: "round-robin",
      clock,
      trafficPolicy: policy,
      onEvent: (e) => events.push(e),
    });
    const push = (eps: readonly Endpoint[]) =>
      listener?.onUpdate(createEndpointSet(eps, clock.now()));
    return { balancer, push, events };
  }

  it("a call waiting for the first endpoints to a failing subset is refused, not thrown from the resolver", async () => {
    const { balancer, push } = setup({
      subsets: [{ name: "v2", match: { version: "2" }, onEmpty: "fail" }],
      routes: [{ header: "x-v2", subset: "v2" }],
    });
    const waiting = balancer.waitForPick(new AbortController().signal, 10_000, {
      header: headers({ "x-v2": "1" }),
    });
    const plain = balancer.waitForPick(new AbortController().signal, 10_000, {
      header: headers({}),
    });
    expect(() => push(fleet)).not.toThrow();
    await expect(waiting).rejects.toMatchObject({ code: Code.Unavailable });
    expect((await plain).endpoint.address).toMatch(/:1$/);
    await balancer.close();
  });

  it("ejection inside a subset falls back to the rest", async () => {
    const { balancer, push, events } = setup(CANARY);
    push(fleet);
    const canary = { header: headers({ "x-canary": "1" }) };
    const a3 = () => balancer.pick(canary);
    // Fail both canaries 5 times in a row: outlier detection ejects them.
    for (let i = 0; i < 10; i++) {
      const p = a3();
      p?.done({ ok: false, code: Code.Unavailable, latencyMs: 1 });
    }
    const after = count(100, () => balancer.pick(canary)?.endpoint.metadata.version);
    expect(after).toEqual(new Map([["1.4.0", 100]]));
    expect(events).toContainEqual({
      source: "traffic",
      type: "subset-fallback",
      target: "t",
      subset: "canary",
      to: "rest",
    });
    await balancer.close();
  });

  it("setTrafficPolicy swaps the policy at once; a bad one throws and keeps the old", async () => {
    const { balancer, push } = setup(CANARY);
    push(fleet);
    const versions = (n: number) => count(n, () => balancer.pick()?.endpoint.metadata.version);
    balancer.setTrafficPolicy({
      subsets: [{ name: "canary", match: { version: "1.5.0" }, percent: 100 }],
    });
    expect(versions(50)).toEqual(new Map([["1.5.0", 50]]));
    expect(() => balancer.setTrafficPolicy({ routes: [{ header: "x", subset: "nope" }] })).toThrow(
      TypeError,
    );
    expect(versions(50)).toEqual(new Map([["1.5.0", 50]]));
    balancer.setTrafficPolicy(undefined);
    // Round robin over all six: 1.4.0 on four, 1.5.0 on two.
    expect(versions(60)).toEqual(
      new Map([
        ["1.4.0", 40],
        ["1.5.0", 20],
      ]),
    );
    await balancer.close();
  });
});
