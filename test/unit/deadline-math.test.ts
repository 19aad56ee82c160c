import { describe, expect, it } from "vitest";
import {
  attemptTimeoutMs,
  canSleepAndRetry,
  parsePushback,
  remainingMs,
} from "../../src/retry/deadline-math.js";

describe("deadline math", () => {
  it.each([
    [1_000, 400, 600],
    [1_000, 1_000, 0],
    [1_000, 1_500, 0],
    [undefined, 5, Number.POSITIVE_INFINITY],
  ])("remainingMs(%s, %s) = %s", (deadlineAt, now, expected) => {
    expect(remainingMs(deadlineAt, now)).toBe(expected);
  });

  it.each([
    ["no deadline", { now: 0, deadlineAt: undefined, delayMs: 1e9, minAttemptMs: 10 }, true],
    ["plenty of time", { now: 0, deadlineAt: 1_000, delayMs: 100, minAttemptMs: 10 }, true],
    ["wake at the deadline", { now: 0, deadlineAt: 1_000, delayMs: 1_000, minAttemptMs: 0 }, false],
    [
      "wake past the deadline",
      { now: 0, deadlineAt: 1_000, delayMs: 2_000, minAttemptMs: 0 },
      false,
    ],
    ["left < minAttemptMs", { now: 0, deadlineAt: 1_000, delayMs: 950, minAttemptMs: 51 }, false],
    ["left = minAttemptMs", { now: 0, deadlineAt: 1_000, delayMs: 950, minAttemptMs: 50 }, true],
    [
      "left < latency estimate",
      { now: 0, deadlineAt: 1_000, delayMs: 500, minAttemptMs: 10, estimatedLatencyMs: 501 },
      false,
    ],
    [
      "left = latency estimate",
      { now: 0, deadlineAt: 1_000, delayMs: 500, minAttemptMs: 10, estimatedLatencyMs: 500 },
      true,
    ],
    [
      "negative delay counts as 0",
      { now: 0, deadlineAt: 100, delayMs: -50, minAttemptMs: 100 },
      true,
    ],
    ["already past", { now: 2_000, deadlineAt: 1_000, delayMs: 0, minAttemptMs: 0 }, false],
  ])("canSleepAndRetry: %s", (_, input, expected) => {
    expect(canSleepAndRetry(input)).toBe(expected);
  });

  it.each([
    [undefined, 300, 300],
    [100, 300, 100],
    [500, 300, 300],
    [undefined, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
    [100, Number.POSITIVE_INFINITY, 100],
  ])("attemptTimeoutMs(%s, %s) = %s", (perAttempt, remaining, expected) => {
    expect(attemptTimeoutMs(perAttempt, remaining)).toBe(expected);
  });

  describe("parsePushback (gRFC A6)", () => {
    it.each([
      [null, undefined],
      [undefined, undefined],
      ["0", { retry: true, delayMs: 0 }],
      ["250", { retry: true, delayMs: 250 }],
      [" 250 ", { retry: true, delayMs: 250 }],
      ["007", { retry: true, delayMs: 7 }],
      ["-1", { retry: false }],
      ["+5", { retry: false }],
      ["1.5", { retry: false }],
      ["1e3", { retry: false }],
      ["", { retry: false }],
      ["abc", { retry: false }],
      ["100, 200", { retry: false }],
      ["100,200", { retry: false }],
      ["0x10", { retry: false }],
      ["99999999999999999999", { retry: false }],
    ])("%j -> %o", (value, expected) => {
      expect(parsePushback(value)).toEqual(expected);
    });
  });
});
