import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BreakerOpenError } from "../../src/breaker/breaker-open-error.js";
import { decideRetry, type RetryDecisionInput } from "../../src/retry/decide-retry.js";

const base: RetryDecisionInput = {
  error: new ConnectError("down", Code.Unavailable),
  attempt: 1,
  maxAttempts: 3,
  retryableCodes: [Code.Unavailable],
  safe: true,
  attemptTimedOut: false,
  replayOverflowed: false,
  backoffMs: 40,
  now: 1_000,
  deadlineAt: undefined,
  minAttemptMs: 5,
  estimatedLatencyMs: undefined,
};

const refused = () =>
  new ConnectError("open", Code.Unavailable, undefined, undefined, new BreakerOpenError("open"));
const notSent = () =>
  new ConnectError("connect ECONNREFUSED", Code.Unavailable, undefined, undefined, {
    code: "ECONNREFUSED",
  });
const withPushback = (code: Code, value: string) =>
  new ConnectError("busy", code, { "grpc-retry-pushback-ms": value });

describe("decideRetry", () => {
  const table: [string, Partial<RetryDecisionInput>, ReturnType<typeof decideRetry>][] = [
    [
      "retries a retryable code of a safe method after the backoff",
      {},
      { retry: true, delayMs: 40, transparent: false, paid: true },
    ],
    [
      "gives up on a code not in retryableCodes",
      { error: new ConnectError("x", Code.Internal) },
      { retry: false, reason: "not-retryable" },
    ],
    ["gives up on an unsafe method", { safe: false }, { retry: false, reason: "unsafe" }],
    [
      "retries a request that never left, even unsafe, unpaid",
      { safe: false, error: notSent() },
      { retry: true, delayMs: 40, transparent: true, paid: false },
    ],
    [
      "retries a never-sent request whatever its code",
      { error: Object.assign(notSent(), {}), retryableCodes: [] },
      { retry: true, delayMs: 40, transparent: true, paid: false },
    ],
    ["gives up at the attempt cap", { attempt: 3 }, { retry: false, reason: "max-attempts" }],
    [
      "gives up at the cap even for a never-sent request",
      { attempt: 3, error: notSent() },
      { retry: false, reason: "max-attempts" },
    ],
    [
      "an open breaker ends the call first",
      { error: refused() },
      { retry: false, reason: "breaker-open" },
    ],
    [
      "an overflowed replay ends the call",
      { replayOverflowed: true },
      { retry: false, reason: "not-replayable" },
    ],
    [
      "negative pushback forbids a retry",
      { error: withPushback(Code.Unavailable, "-1") },
      { retry: false, reason: "pushback" },
    ],
    [
      "pushback replaces the backoff",
      { error: withPushback(Code.Unavailable, "250") },
      { retry: true, delayMs: 250, transparent: false, paid: true },
    ],
    [
      "RESOURCE_EXHAUSTED without pushback is not retried",
      { error: new ConnectError("x", Code.ResourceExhausted) },
      { retry: false, reason: "not-retryable" },
    ],
    [
      "RESOURCE_EXHAUSTED with pushback is retried",
      { error: withPushback(Code.ResourceExhausted, "10") },
      { retry: true, delayMs: 10, transparent: false, paid: true },
    ],
    [
      "ABORTED with pushback (key in use) is retried",
      { error: withPushback(Code.Aborted, "20") },
      { retry: true, delayMs: 20, transparent: false, paid: true },
    ],
    [
      "DEADLINE_EXCEEDED of the call is not retried",
      { error: new ConnectError("x", Code.DeadlineExceeded) },
      { retry: false, reason: "not-retryable" },
    ],
    [
      "DEADLINE_EXCEEDED of a per-attempt timeout is retried",
      { error: new ConnectError("x", Code.DeadlineExceeded), attemptTimedOut: true },
      { retry: true, delayMs: 40, transparent: false, paid: true },
    ],
    [
      "no retry when waking is at the deadline",
      { deadlineAt: 1_040 },
      { retry: false, reason: "deadline" },
    ],
    [
      "no retry when less than minAttemptMs is left after waking",
      { deadlineAt: 1_044 },
      { retry: false, reason: "deadline" },
    ],
    [
      "a retry when minAttemptMs fits after waking",
      { deadlineAt: 1_045 },
      { retry: true, delayMs: 40, transparent: false, paid: true },
    ],
    [
      "no retry when the latency estimate does not fit",
      { deadlineAt: 1_100, estimatedLatencyMs: 70 },
      { retry: false, reason: "deadline" },
    ],
    [
      "a retry when the latency estimate fits",
      { deadlineAt: 1_100, estimatedLatencyMs: 50 },
      { retry: true, delayMs: 40, transparent: false, paid: true },
    ],
    [
      "pushback counts against the deadline",
      { deadlineAt: 1_100, error: withPushback(Code.Unavailable, "200") },
      { retry: false, reason: "deadline" },
    ],
  ];
  it.each(table)("%s", (_name, input, want) => {
    expect(decideRetry({ ...base, ...input })).toEqual(want);
  });

  it("is pure: the same input gives the same decision and reads nothing else", () => {
    const input = { ...base, deadlineAt: 1_100 };
    expect(decideRetry(input)).toEqual(decideRetry(input));
  });
});
