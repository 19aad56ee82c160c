import { describe, expect, it } from "vitest";
import {
  countZones,
  decideZoneRouting,
  type ZoneDecision,
  type ZoneInput,
} from "../../src/balancer/zone-aware.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";

const m = (o: Record<string, number>) => new Map(Object.entries(o));

function decide(
  total: Record<string, number>,
  healthy: Record<string, number>,
  extra: Partial<ZoneInput> = {},
): ZoneDecision {
  return decideZoneRouting({
    zone: "a",
    total: m(total),
    healthy: m(healthy),
    minEndpoints: 1,
    ...extra,
  });
}

const round = (d: ZoneDecision) => ({
  mode: d.mode,
  local: Math.round(d.localShare * 1000) / 1000,
  others: Object.fromEntries(d.others.map((o) => [o.zone, Math.round(o.share * 1000) / 1000])),
});

describe("decideZoneRouting (Envoy's zone-aware rule)", () => {
  const cases: [
    string,
    Record<string, number>,
    Record<string, number>,
    Partial<ZoneInput>,
    ReturnType<typeof round>,
  ][] = [
    [
      "all healthy, even spread: stay local",
      { a: 3, b: 3 },
      { a: 3, b: 3 },
      {},
      { mode: "local", local: 1, others: {} },
    ],
    [
      "local zone larger than its load: stay local",
      { a: 4, b: 2 },
      { a: 4, b: 2 },
      {},
      { mode: "local", local: 1, others: {} },
    ],
    // upstream[a] = 1/4, local[a] = 3/6: stay 0.25 / 0.5.
    [
      "two of three local ejected: half spills",
      { a: 3, b: 3 },
      { a: 1, b: 3 },
      {},
      { mode: "spill", local: 0.5, others: { b: 0.5 } },
    ],
    // upstream[a] = 2/5 = 0.4 vs 0.5: stay 0.8.
    [
      "one of three local ejected: a fifth spills",
      { a: 3, b: 3 },
      { a: 2, b: 3 },
      {},
      { mode: "spill", local: 0.8, others: { b: 0.2 } },
    ],
    // Three zones: upstream a=1/7, b=3/7, c=3/7; local 1/3 each. Stay 3/7;
    // residual b = c = 3/7 - 1/3: the 4/7 left splits evenly.
    [
      "three zones: residual capacity splits the spill",
      { a: 3, b: 3, c: 3 },
      { a: 1, b: 3, c: 3 },
      {},
      { mode: "spill", local: 0.429, others: { b: 0.286, c: 0.286 } },
    ],
    // Residual of c is 0 (it is itself short): only b takes the spill.
    [
      "a short other zone takes no spill",
      { a: 3, b: 3, c: 3 },
      { a: 1, b: 3, c: 1 },
      {},
      { mode: "spill", local: 0.6, others: { b: 0.4 } },
    ],
    // Client load 90% in a, upstream a = 50%: stay 0.5/0.9.
    [
      "client shares given: heavy local load spills",
      { a: 3, b: 3 },
      { a: 3, b: 3 },
      { clientShares: { a: 9, b: 1 } },
      { mode: "spill", local: 0.556, others: { b: 0.444 } },
    ],
    [
      "client shares given: light local load stays",
      { a: 3, b: 3 },
      { a: 3, b: 3 },
      { clientShares: { a: 1, b: 9 } },
      { mode: "local", local: 1, others: {} },
    ],
    [
      "local zone has no healthy endpoint: fail over",
      { a: 3, b: 2, c: 2 },
      { a: 0, b: 2, c: 1 },
      {},
      { mode: "failover", local: 0, others: { b: 0.667, c: 0.333 } },
    ],
    [
      "fleet below minEndpoints: off",
      { a: 2, b: 2 },
      { a: 1, b: 2 },
      { minEndpoints: 6 },
      { mode: "off", local: 0, others: {} },
    ],
    [
      "no endpoint in the client's zone: off",
      { b: 3, c: 3 },
      { b: 3, c: 3 },
      {},
      { mode: "off", local: 0, others: {} },
    ],
    ["nothing healthy: off", { a: 3, b: 3 }, {}, {}, { mode: "off", local: 0, others: {} }],
  ];
  it.each(cases)("%s", (_, total, healthy, extra, expected) => {
    const d = decide(total, healthy, extra);
    expect(round(d)).toEqual(expected);
    const sum = d.localShare + d.others.reduce((s, o) => s + o.share, 0);
    if (d.mode !== "off") expect(sum).toBeCloseTo(1, 9);
    expect(Object.isFrozen(d)).toBe(true);
  });

  it("says why in the reason", () => {
    expect(decide({ a: 3, b: 3 }, { a: 1, b: 3 }).reason).toBe(
      'zone "a" holds 25% of the healthy endpoints for 50% of the load',
    );
    expect(decide({ a: 2 }, { a: 2 }, { minEndpoints: 6 }).reason).toBe(
      "2 endpoints are fewer than minEndpoints 6",
    );
    expect(decide({ a: 2, b: 1 }, { b: 1 }).reason).toBe('zone "a" has no healthy endpoint');
  });

  it("spill keeps the expected calls per healthy endpoint even", () => {
    // With clients spread like the servers (3/3), each client zone sends half
    // the load. Endpoint load = sum over client zones of their routed share.
    const d = decide({ a: 3, b: 3 }, { a: 1, b: 3 });
    const toA = 0.5 * d.localShare; // b's clients stay in b (b is not short)
    const toB = 0.5 * (1 - d.localShare) + 0.5;
    expect(toA / 1).toBeCloseTo(toB / 3, 9);
  });
});

describe("countZones", () => {
  it("counts by label; no label is zone ''", () => {
    const eps = [
      createEndpoint("x:1", { metadata: { zone: "a" } }),
      createEndpoint("x:2", { metadata: { zone: "a" } }),
      createEndpoint("x:3", { metadata: { az: "b" } }),
    ];
    expect(countZones(eps, "zone")).toEqual(m({ a: 2, "": 1 }));
    expect(countZones(eps, "az")).toEqual(m({ "": 2, b: 1 }));
  });
});
