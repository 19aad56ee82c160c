import { describe, expect, it } from "vitest";
import {
  BACKGROUND,
  clampTimerDelayMs,
  createWakeTimer,
  MAX_TIMER_DELAY_MS,
  systemClock,
} from "../../src/clock.js";
import { parseGrpcTimeout } from "../../src/grpc-timeout.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

describe("clampTimerDelayMs", () => {
  const table: [string, number, number][] = [
    ["zero", 0, 0],
    ["a normal delay", 1_500, 1_500],
    ["a fraction", 0.25, 0.25],
    ["a negative delay", -5, 0],
    ["NaN", Number.NaN, 0],
    ["exactly 2^31-1", 2 ** 31 - 1, 2 ** 31 - 1],
    ["2^31", 2 ** 31, 2 ** 31 - 1],
    ["grpc-timeout 99999999H", parseGrpcTimeout("99999999H") as number, 2 ** 31 - 1],
    ["grpc-timeout 2500000S", parseGrpcTimeout("2500000S") as number, 2 ** 31 - 1],
    ["Infinity", Number.POSITIVE_INFINITY, 2 ** 31 - 1],
    ["-Infinity", Number.NEGATIVE_INFINITY, 0],
  ];
  it.each(table)("%s", (_name, delayMs, want) => {
    expect(clampTimerDelayMs(delayMs)).toBe(want);
  });

  it("names Node's limit", () => {
    expect(MAX_TIMER_DELAY_MS).toBe(2_147_483_647);
  });
});

describe("systemClock timers", () => {
  it("an over-long delay does not fire early (Node would fire it after 1 ms)", async () => {
    const fired: string[] = [];
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const long = systemClock.setTimeout(() => fired.push("long"), 2 ** 33);
      // A 20 ms timer fires after any 1 ms timer: ordering, not duration.
      await new Promise<void>((resolve) => systemClock.setTimeout(resolve, 20));
      systemClock.clearTimeout(long);
    } finally {
      process.off("warning", onWarning);
    }
    expect(fired).toEqual([]);
    expect(warnings).not.toContain("TimeoutOverflowWarning");
  });

  it("keeps the process alive by default and lets it exit for background timers", () => {
    const call = systemClock.setTimeout(() => {}, 60_000) as NodeJS.Timeout;
    const background = systemClock.setTimeout(() => {}, 60_000, BACKGROUND) as NodeJS.Timeout;
    try {
      expect(call.hasRef()).toBe(true);
      expect(background.hasRef()).toBe(false);
    } finally {
      systemClock.clearTimeout(call);
      systemClock.clearTimeout(background);
    }
  });
});

describe("createWakeTimer", () => {
  it("moves its one timer earlier, never later, and fires once per wake", () => {
    const clock = createFakeClock();
    let woke = 0;
    const wake = createWakeTimer(clock, () => woke++);
    wake.wakeIn(1_000);
    wake.wakeIn(5_000); // later: the 1 s wake stands
    wake.wakeIn(100); // earlier: moves it
    expect(clock.pendingTimers).toBe(1);
    clock.advance(100);
    expect(woke).toBe(1);
    clock.advance(5_000);
    expect(woke).toBe(1);
    wake.wakeIn(50);
    wake.cancel();
    clock.advance(100);
    expect(woke).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });
});
