import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  type BalancerEvent,
  createBalancer,
  type LoadBalancingPolicy,
  type Subchannel,
} from "../../src/balancer/balancer.js";
import type { OutlierDetectorOptions } from "../../src/balancer/outlier-detector.js";
import { createEndpoint, createEndpointSet } from "../../src/discovery/endpoint.js";
import type { Resolver, ResolverListener } from "../../src/discovery/resolver.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

interface FakeSubchannel extends Subchannel {
  connState: string;
  closed: boolean;
}

function setup(
  options: {
    policy?: LoadBalancingPolicy;
    removalGraceMs?: number;
    outlierDetection?: OutlierDetectorOptions | false;
  } = {},
) {
  const clock = createFakeClock(1_000);
  let listener: ResolverListener | undefined;
  const resolver: Resolver = {
    start: (l) => {
      listener = l;
    },
    close: () => {},
  };
  const subchannels = new Map<string, FakeSubchannel>();
  const events: BalancerEvent[] = [];
  // A fixed-seed LCG: every run draws the same sequence.
  let seed = 42;
  const random = () => {
    seed = (seed * 9301 + 49297) % 233280;
    return seed / 233280;
  };
  const balancer = createBalancer<FakeSubchannel>({
    target: "t",
    resolver,
    clock,
    outlierDetection: false,
    ...options,
    random,
    createSubchannel: (e) => {
      const s: FakeSubchannel = {
        address: e.address,
        connState: "open",
        closed: false,
        state() {
          return this.connState;
        },
        close() {
          this.closed = true;
        },
      };
      subchannels.set(e.address, s);
      return s;
    },
    onEvent: (e) => events.push(e),
  });
  const push = (...addresses: string[]) =>
    listener?.onUpdate(
      createEndpointSet(
        addresses.map((a) => createEndpoint(a)),
        clock.now(),
      ),
    );
  const pickAll = (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const p = balancer.pick();
      if (p === undefined) continue;
      seen.add(p.endpoint.address);
      p.done({ ok: true, latencyMs: 1 });
    }
    return [...seen].sort();
  };
  const sizes = () =>
    events.flatMap((e) => (e.source === "balancer" && e.type === "endpoints" ? [e.size] : []));
  const ofType = (type: string) => events.filter((e) => e.source === "balancer" && e.type === type);
  return { clock, balancer, subchannels, events, push, pickAll, sizes, ofType };
}

describe("balancer: stabilized endpoint set", () => {
  it("holds a mass deletion the registry undoes: the set never shrinks", () => {
    const t = setup({ policy: "round-robin" });
    t.push("a:1", "b:1", "c:1");
    expect(t.pickAll(30)).toEqual(["a:1", "b:1", "c:1"]);
    // etcd revokes the three leases one by one, then the registrars put them back.
    t.push("b:1", "c:1");
    t.push("c:1");
    t.push();
    expect(t.balancer.pick()).toBeDefined();
    t.push("a:1");
    t.push("a:1", "b:1");
    t.push("a:1", "b:1", "c:1");
    expect(Math.min(...t.sizes())).toBe(3);
    expect(t.ofType("removal-held")).toHaveLength(3);
    expect(t.ofType("removal-cancelled")).toHaveLength(3);
    expect(t.ofType("removal-applied")).toHaveLength(0);
    expect([...t.subchannels.values()].filter((s) => s.closed)).toHaveLength(0);
    t.clock.advance(10_000);
    expect(t.pickAll(30)).toEqual(["a:1", "b:1", "c:1"]);
  });

  it("applies a held removal once the grace runs out and closes its connection", () => {
    const t = setup({ policy: "round-robin", removalGraceMs: 2_000 });
    t.push("a:1", "b:1");
    t.pickAll(20);
    t.push("a:1");
    expect(t.pickAll(20)).toEqual(["a:1", "b:1"]);
    t.clock.advance(1_999);
    expect(t.balancer.state().endpoints.map((e) => e.address)).toEqual(["a:1", "b:1"]);
    t.clock.advance(1);
    expect(t.ofType("removal-applied")).toMatchObject([{ address: "b:1", reason: "expired" }]);
    expect(t.pickAll(20)).toEqual(["a:1"]);
    expect(t.subchannels.get("b:1")?.closed).toBe(true);
    expect(t.sizes()).toEqual([2, 1]);
    expect(t.clock.pendingTimers).toBe(0);
  });

  it("lets a held endpoint go at once when its connection closes after being up", () => {
    const t = setup({ policy: "round-robin" });
    t.push("a:1", "b:1");
    t.pickAll(4);
    t.push("a:1");
    expect(t.pickAll(4)).toEqual(["a:1", "b:1"]);
    // The draining server sent GOAWAY and the connection closed.
    const b = t.subchannels.get("b:1") as FakeSubchannel;
    b.connState = "closed";
    expect(t.pickAll(4)).toEqual(["a:1"]);
    expect(t.ofType("removal-applied")).toMatchObject([{ address: "b:1", reason: "dead" }]);
    expect(b.closed).toBe(true);
  });

  it("lets a held endpoint go at once when its connection fails", () => {
    const t = setup({ policy: "pick-first" });
    t.push("a:1", "b:1");
    t.pickAll(1);
    t.push("b:1");
    // Held endpoints come after listed ones; an attempt avoiding b:1 still reaches a:1.
    expect(t.balancer.pick({ avoid: ["b:1"] })?.endpoint.address).toBe("a:1");
    (t.subchannels.get("a:1") as FakeSubchannel).connState = "error";
    expect(t.balancer.pick({ avoid: ["b:1"] })?.endpoint.address).toBe("b:1");
    expect(t.ofType("removal-applied")).toMatchObject([{ address: "a:1", reason: "dead" }]);
  });

  it("lets a held endpoint go when a call to it fails UNAVAILABLE (connection refused)", () => {
    const t = setup({ policy: "pick-first" });
    t.push("a:1", "b:1");
    t.push("b:1");
    const p = t.balancer.pick({ avoid: ["b:1"] });
    expect(p?.endpoint.address).toBe("a:1");
    p?.done({ ok: false, code: Code.Unavailable, latencyMs: 1 });
    expect(t.balancer.pick({ avoid: ["b:1"] })?.endpoint.address).toBe("b:1");
    expect(t.ofType("removal-applied")).toMatchObject([{ address: "a:1", reason: "dead" }]);
  });

  it("keeps a held endpoint through failures that say nothing about its liveness", () => {
    const t = setup({ policy: "pick-first" });
    t.push("a:1", "b:1");
    t.push("b:1");
    const p = t.balancer.pick({ avoid: ["b:1"] });
    p?.done({ ok: false, code: Code.InvalidArgument, latencyMs: 1 });
    expect(t.balancer.pick({ avoid: ["b:1"] })?.endpoint.address).toBe("a:1");
  });

  it("lets a held endpoint go when outlier detection ejects it", () => {
    const t = setup({ policy: "pick-first", outlierDetection: { consecutiveFailures: 2 } });
    t.push("a:1", "b:1");
    t.push("b:1");
    for (let i = 0; i < 2; i++) {
      t.balancer.pick({ avoid: ["b:1"] })?.done({ ok: false, code: Code.Internal, latencyMs: 1 });
    }
    expect(t.ofType("removal-applied")).toMatchObject([{ address: "a:1", reason: "dead" }]);
    expect(t.subchannels.get("a:1")?.closed).toBe(true);
  });

  it("a removal with the grace at 0 is applied at once", () => {
    const t = setup({ removalGraceMs: 0 });
    t.push("a:1", "b:1");
    t.push("a:1");
    expect(t.sizes()).toEqual([2, 1]);
    expect(t.ofType("removal-held")).toHaveLength(0);
  });

  it("rejects a bad removalGraceMs at construction, quoting it", () => {
    expect(() => setup({ removalGraceMs: -1 })).toThrow(/removalGraceMs -1/);
    expect(() => setup({ removalGraceMs: Number.NaN })).toThrow(RangeError);
  });
});

describe("balancer: pickers honour avoid themselves", () => {
  for (const policy of ["p2c-ewma", "round-robin", "pick-first"] as const) {
    it(`${policy} passes over avoided endpoints while another is ready`, () => {
      const t = setup({ policy });
      t.push("a:1", "b:1", "c:1");
      for (let i = 0; i < 30; i++) {
        const p = t.balancer.pick({ avoid: ["a:1", "b:1"] });
        expect(p?.endpoint.address).toBe("c:1");
        p?.done({ ok: true, latencyMs: 1 });
      }
    });

    it(`${policy} still picks when every endpoint is avoided`, () => {
      const t = setup({ policy });
      t.push("a:1", "b:1");
      const p = t.balancer.pick({ avoid: ["a:1", "b:1"] });
      expect(["a:1", "b:1"]).toContain(p?.endpoint.address);
    });
  }

  it("rejects an unknown policy naming the ones on offer", () => {
    expect(() => setup({ policy: "random" as LoadBalancingPolicy })).toThrow(
      /policy "random" must be one of p2c-ewma, round-robin, pick-first/,
    );
  });
});
