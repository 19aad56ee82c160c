import { describe, expect, it } from "vitest";
import { type HeldEndpoint, stabilizeEndpoints } from "../../src/balancer/stabilize-endpoints.js";
import { createEndpoint, type Endpoint } from "../../src/discovery/endpoint.js";

const ep = (a: string): Endpoint => createEndpoint(a);
const a = ep("a:1");
const b = ep("b:1");
const c = ep("c:1");
const GRACE = 5_000;
const heldAt = (removedAt: number, ...eps: Endpoint[]): Map<string, HeldEndpoint> =>
  new Map(eps.map((e) => [e.address, { endpoint: e, removedAt }]));
const addrs = (eps: readonly Endpoint[]) => eps.map((e) => e.address);

describe("stabilizeEndpoints (pure decision)", () => {
  const cases: {
    name: string;
    resolved: Endpoint[];
    current: Endpoint[];
    held?: Map<string, HeldEndpoint>;
    dead?: string[];
    now: number;
    graceMs?: number;
    endpoints: string[];
    newlyHeld?: string[];
    applied?: { address: string; reason: "expired" | "dead" }[];
    returned?: string[];
    nextExpiryAt?: number | undefined;
  }[] = [
    {
      name: "additions take effect at once",
      resolved: [a, b, c],
      current: [a],
      now: 0,
      endpoints: ["a:1", "b:1", "c:1"],
      nextExpiryAt: undefined,
    },
    {
      name: "a removal of a live endpoint is held",
      resolved: [a, b],
      current: [a, b, c],
      now: 100,
      endpoints: ["a:1", "b:1", "c:1"],
      newlyHeld: ["c:1"],
      nextExpiryAt: 100 + GRACE,
    },
    {
      name: "a mass deletion keeps every live endpoint: the set never drops to empty",
      resolved: [],
      current: [a, b, c],
      now: 7,
      endpoints: ["a:1", "b:1", "c:1"],
      newlyHeld: ["a:1", "b:1", "c:1"],
      nextExpiryAt: 7 + GRACE,
    },
    {
      name: "re-added endpoints end their holds (3 → 3 after revoke and re-register)",
      resolved: [a, b, c],
      current: [a, b, c],
      held: heldAt(7, a, b, c),
      now: 30,
      endpoints: ["a:1", "b:1", "c:1"],
      returned: ["a:1", "b:1", "c:1"],
      nextExpiryAt: undefined,
    },
    {
      name: "a dead endpoint's removal is applied at once",
      resolved: [a, b],
      current: [a, b, c],
      dead: ["c:1"],
      now: 0,
      endpoints: ["a:1", "b:1"],
      applied: [{ address: "c:1", reason: "dead" }],
    },
    {
      name: "a held endpoint that dies leaves at once",
      resolved: [a],
      current: [a, b],
      held: heldAt(0, b),
      dead: ["b:1"],
      now: 10,
      endpoints: ["a:1"],
      applied: [{ address: "b:1", reason: "dead" }],
    },
    {
      name: "a hold runs out after the grace",
      resolved: [a],
      current: [a, b],
      held: heldAt(0, b),
      now: GRACE,
      endpoints: ["a:1"],
      applied: [{ address: "b:1", reason: "expired" }],
    },
    {
      name: "a hold is kept just before the grace ends",
      resolved: [a],
      current: [a, b],
      held: heldAt(0, b),
      now: GRACE - 1,
      endpoints: ["a:1", "b:1"],
      nextExpiryAt: GRACE,
    },
    {
      name: "grace 0 applies every removal at once",
      resolved: [],
      current: [a, b],
      now: 0,
      graceMs: 0,
      endpoints: [],
      applied: [
        { address: "a:1", reason: "expired" },
        { address: "b:1", reason: "expired" },
      ],
    },
    {
      name: "held endpoints follow the resolved ones, sorted; the earliest expiry is next",
      resolved: [b],
      current: [b, c, a],
      held: heldAt(1_000, c),
      now: 2_000,
      endpoints: ["b:1", "a:1", "c:1"],
      newlyHeld: ["a:1"],
      nextExpiryAt: 1_000 + GRACE,
    },
    {
      name: "dead endpoints still listed by the resolver are not the stabilizer's business",
      resolved: [a, b],
      current: [a, b],
      dead: ["a:1"],
      now: 0,
      endpoints: ["a:1", "b:1"],
    },
  ];

  for (const t of cases) {
    it(t.name, () => {
      const d = stabilizeEndpoints({
        resolved: t.resolved,
        current: t.current,
        held: t.held ?? new Map(),
        dead: new Set(t.dead ?? []),
        now: t.now,
        removalGraceMs: t.graceMs ?? GRACE,
      });
      expect(addrs(d.endpoints)).toEqual(t.endpoints);
      expect(d.newlyHeld).toEqual(t.newlyHeld ?? []);
      expect(d.applied).toEqual(t.applied ?? []);
      expect(d.returned).toEqual(t.returned ?? []);
      if ("nextExpiryAt" in t) expect(d.nextExpiryAt).toBe(t.nextExpiryAt);
      expect([...d.held.keys()].sort()).toEqual(
        t.endpoints.filter((x) => !t.resolved.some((r) => r.address === x)).sort(),
      );
    });
  }

  it("a flap replayed step by step never leaves the set empty", () => {
    // etcd resumes: the 3 leases are revoked one by one, then re-registered.
    const steps: Endpoint[][] = [[a, b, c], [b, c], [c], [], [a], [a, b], [a, b, c]];
    let current: readonly Endpoint[] = [];
    let held: ReadonlyMap<string, HeldEndpoint> = new Map();
    const sizes: number[] = [];
    steps.forEach((resolved, i) => {
      const d = stabilizeEndpoints({
        resolved,
        current,
        held,
        dead: new Set(),
        now: i * 10,
        removalGraceMs: GRACE,
      });
      current = d.endpoints;
      held = d.held;
      sizes.push(current.length);
    });
    expect(sizes).toEqual([3, 3, 3, 3, 3, 3, 3]);
    expect(held.size).toBe(0);
  });
});
