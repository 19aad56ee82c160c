import { describe, expect, it } from "vitest";
import { syncEndpointLoads } from "../../src/balancer/endpoint-load.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";

describe("syncEndpointLoads", () => {
  it("keeps state by address, creates new state ready since now, drops the rest", () => {
    const a = createEndpoint("a:1");
    const b = createEndpoint("b:1");
    const first = syncEndpointLoads(new Map(), [a, b], 10, { seedRttMs: 7 });
    expect(first.get("a:1")).toMatchObject({ readySince: 10 });
    expect(first.get("a:1")!.ewma.rttMs(10)).toBe(7);
    first.get("a:1")!.ewma.start();
    const c = createEndpoint("c:1");
    const second = syncEndpointLoads(first, [createEndpoint("a:1", { weight: 5 }), c], 20);
    expect(second.get("a:1")).toBe(first.get("a:1"));
    expect(second.get("a:1")!.ewma.pending).toBe(1);
    expect(second.get("c:1")).toMatchObject({ readySince: 20 });
    expect(second.has("b:1")).toBe(false);
    expect(first.has("b:1")).toBe(true);
  });
});
