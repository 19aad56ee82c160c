import { createContextKey, createContextValues } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { attemptKey, createAttempt, withAttempt, withPicked } from "../../src/call/attempt.js";

describe("Attempt", () => {
  it("is frozen, and copies its avoid list", () => {
    const avoid = ["a:1"];
    const attempt = createAttempt({ number: 2, deadlineAt: 100, avoid });
    avoid.push("b:2");
    expect(attempt.avoid).toEqual(["a:1"]);
    expect(Object.isFrozen(attempt)).toBe(true);
    expect(Object.isFrozen(attempt.avoid)).toBe(true);
    expect(() => createAttempt({ number: 0 })).toThrow(/attempt number 0/);
  });

  it("withPicked chains the hook: the original runs first, then the observer, even if one throws", () => {
    const seen: string[] = [];
    const base = createAttempt({
      number: 1,
      picked: (e) => {
        seen.push(`base ${e}`);
        throw new Error("base broke");
      },
    });
    const observed = withPicked(base, (e) => seen.push(`observer ${e}`));
    expect(() => observed.picked("a:1")).toThrow(/base broke/);
    expect(seen).toEqual(["base a:1", "observer a:1"]);
    expect(observed.number).toBe(1);
  });

  it("withAttempt gives each hedge its own attempt and shares every other value", () => {
    const shared = createContextKey(0);
    const parent = createContextValues();
    const one = withAttempt(parent, createAttempt({ number: 1 }));
    const two = withAttempt(parent, createAttempt({ number: 2 }));
    one.set(shared, 7);
    expect(two.get(shared)).toBe(7);
    expect(parent.get(shared)).toBe(7);
    expect(one.get(attemptKey)?.number).toBe(1);
    expect(two.get(attemptKey)?.number).toBe(2);
    expect(parent.get(attemptKey)).toBeUndefined();
    expect(() => one.set(attemptKey, createAttempt({ number: 3 }))).toThrow(TypeError);
  });
});
