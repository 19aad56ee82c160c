import { describe, expect, it } from "vitest";
import { createPickFirstPicker } from "../../src/balancer/pick-first.js";
import {
  chainDone,
  type DoneInfo,
  EMPTY_PICKER,
  type PickResult,
} from "../../src/balancer/picker.js";
import { createRoundRobinPicker } from "../../src/balancer/round-robin.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";

const eps = ["a:1", "b:1", "c:1"].map((a) => createEndpoint(a));
const addresses = (results: (PickResult | undefined)[]) => results.map((r) => r?.endpoint.address);

describe("pick-first picker", () => {
  it("always picks the first ready endpoint", () => {
    const p = createPickFirstPicker(eps);
    expect(addresses([p.pick(), p.pick(), p.pick({ avoid: [] })])).toEqual(["a:1", "a:1", "a:1"]);
  });

  it("picks nothing from an empty list", () => {
    expect(createPickFirstPicker([])).toBe(EMPTY_PICKER);
    expect(EMPTY_PICKER.pick()).toBeUndefined();
  });

  it("is frozen", () => {
    expect(Object.isFrozen(createPickFirstPicker(eps))).toBe(true);
  });
});

describe("round-robin picker", () => {
  it("cycles in order from the random start", () => {
    const p = createRoundRobinPicker(eps, { random: () => 0.5 }); // start at index 1
    expect(addresses([p.pick(), p.pick(), p.pick(), p.pick()])).toEqual([
      "b:1",
      "c:1",
      "a:1",
      "b:1",
    ]);
  });

  it.each([
    [0, "a:1"],
    [0.999999, "c:1"],
    [1, "c:1"],
    [-3, "a:1"],
  ])("clamps random() %f to a valid start (%s)", (r, first) => {
    expect(createRoundRobinPicker(eps, { random: () => r }).pick()?.endpoint.address).toBe(first);
  });

  it("picks nothing from an empty list and the single endpoint of one", () => {
    expect(createRoundRobinPicker([]).pick()).toBeUndefined();
    const one = createRoundRobinPicker([eps[0]!]);
    expect(addresses([one.pick(), one.pick()])).toEqual(["a:1", "a:1"]);
  });

  it("is not affected by later changes to the input array", () => {
    const list = [...eps];
    const p = createRoundRobinPicker(list, { random: () => 0 });
    list.length = 0;
    expect(addresses([p.pick(), p.pick()])).toEqual(["a:1", "b:1"]);
  });
});

describe("chainDone", () => {
  it("runs the original done first, then the wrapper, with the same info", () => {
    const calls: string[] = [];
    const base: PickResult = { endpoint: eps[0]!, done: (i) => calls.push(`base:${i.ok}`) };
    const wrapped = chainDone(
      chainDone(base, (i) => calls.push(`one:${i.latencyMs}`)),
      () => calls.push("two"),
    );
    const info: DoneInfo = { ok: true, latencyMs: 7 };
    wrapped.done(info);
    expect(wrapped.endpoint).toBe(eps[0]);
    expect(calls).toEqual(["base:true", "one:7", "two"]);
  });

  it("still runs the wrapper when the original done throws", () => {
    let ran = false;
    const base: PickResult = {
      endpoint: eps[0]!,
      done: () => {
        throw new Error("boom");
      },
    };
    expect(() => chainDone(base, () => (ran = true)).done({ ok: true, latencyMs: 1 })).toThrow(
      "boom",
    );
    expect(ran).toBe(true);
  });
});
