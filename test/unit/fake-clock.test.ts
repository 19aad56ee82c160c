import { describe, expect, it } from "vitest";
import { createFakeClock } from "../../src/testing/fake-clock.js";

describe("fake clock", () => {
  it("moves only when told and fires due timers in order", () => {
    const clock = createFakeClock(100);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    const c = clock.setTimeout(() => fired.push("c"), 5);
    clock.clearTimeout(c);
    clock.clearTimeout("unknown");
    expect(clock.pendingTimers).toBe(2);
    clock.advance(15);
    expect(fired).toEqual(["a@110"]);
    expect(clock.now()).toBe(115);
    clock.set(200);
    expect(fired).toEqual(["a@110", "b@120"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("fires timers scheduled by timers within the same advance", () => {
    const clock = createFakeClock();
    const fired: number[] = [];
    clock.setTimeout(() => {
      fired.push(clock.now());
      clock.setTimeout(() => fired.push(clock.now()), 5);
    }, 5);
    clock.advance(10);
    expect(fired).toEqual([5, 10]);
  });

  it("refuses to go backwards", () => {
    const clock = createFakeClock(10);
    expect(() => clock.set(5)).toThrow(new RangeError("time 5 must be >= now 10"));
    expect(() => clock.advance(-1)).toThrow(new RangeError("advance -1 must be >= 0"));
  });
});
