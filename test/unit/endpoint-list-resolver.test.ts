import { describe, expect, it } from "vitest";
import {
  createEndpointListResolver,
  type EndpointInit,
  type EndpointSet,
} from "../../src/index.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

describe("createEndpointListResolver", () => {
  it("pushes one frozen snapshot with weights and metadata", () => {
    const clock = createFakeClock(42);
    const sets: EndpointSet[] = [];
    const resolver = createEndpointListResolver(
      [
        { address: "10.0.0.1:5000", metadata: { zone: "a", version: "1.5.0" } },
        { address: "[::1]:5001", weight: 3 },
      ],
      clock,
    );
    resolver.start({ onUpdate: (s) => sets.push(s) });
    expect(sets).toHaveLength(1);
    expect(sets[0]?.resolvedAt).toBe(42);
    expect(sets[0]?.endpoints).toEqual([
      { address: "10.0.0.1:5000", weight: 1, metadata: { zone: "a", version: "1.5.0" } },
      { address: "[::1]:5001", weight: 3, metadata: {} },
    ]);
    expect(Object.isFrozen(sets[0]?.endpoints[0]?.metadata)).toBe(true);
  });

  const bad: [string, EndpointInit[], RegExp][] = [
    ["bad address", [{ address: "nope" }], /nope/],
    ["repeated address", [{ address: "a:1" }, { address: "a:1" }], /a:1 is listed twice/],
    ["weight 0", [{ address: "a:1", weight: 0 }], /weight 0 must be an integer in 1..65535/],
    [
      "metadata not a string",
      [{ address: "a:1", metadata: { zone: 1 as unknown as string } }],
      /metadata zone 1 must be a string/,
    ],
  ];
  it.each(bad)("rejects %s at construction", (_, list, message) => {
    expect(() => createEndpointListResolver(list)).toThrow(message);
  });
});
