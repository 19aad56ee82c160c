import { Code, type ConnectError } from "@connectrpc/connect";
import { BreakerOpenError } from "../breaker/breaker-open-error.js";
import { RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { wasNotSent } from "../call/not-sent.js";
import { canSleepAndRetry, parsePushback } from "./deadline-math.js";
import type { GiveUpReason } from "./retry-events.js";

/** RetryDecisionInput is every fact decideRetry weighs, read by the caller beforehand. */
export interface RetryDecisionInput {
  /** error is how the attempt failed. */
  readonly error: ConnectError;
  /** attempt is the 1-based number of the attempt that failed. */
  readonly attempt: number;
  /** maxAttempts is the policy's cap, the first attempt included. */
  readonly maxAttempts: number;
  readonly retryableCodes: readonly Code[];
  /** safe: the method may run twice (idempotency level, key, or override). */
  readonly safe: boolean;
  /** attemptTimedOut: the per-attempt timeout, not the call's deadline, ended it. */
  readonly attemptTimedOut: boolean;
  /** replayOverflowed: the client stream outgrew its replay buffer. */
  readonly replayOverflowed: boolean;
  /** backoffMs is the policy's wait before the next attempt (the caller draws the jitter). */
  readonly backoffMs: number;
  readonly now: number;
  /** deadlineAt is the call's deadline on the same clock as `now`; undefined: none. */
  readonly deadlineAt: number | undefined;
  readonly minAttemptMs: number;
  /** estimatedLatencyMs: no endpoint is expected to answer faster. */
  readonly estimatedLatencyMs?: number | undefined;
}

/**
 * RetryDecision is decideRetry's verdict. A retry says how long to wait,
 * whether it is transparent (the request never left the client), and whether
 * it must be paid from the retry budget; the caller withdraws and gives up
 * with reason "budget" when it cannot.
 */
export type RetryDecision =
  | {
      readonly retry: true;
      readonly delayMs: number;
      readonly transparent: boolean;
      readonly paid: boolean;
    }
  | { readonly retry: false; readonly reason: GiveUpReason };

/**
 * decideRetry says whether a failed attempt is tried again, and after how
 * long. Pure: it reads no clock, draws no random number, touches no budget
 * and emits nothing. In order: an open breaker, an overflowed replay, and a
 * server's "don't retry" pushback end the call; a request that never left
 * the client is retried whatever its code or safety (gRFC A6 transparent
 * retry); otherwise the code must be retryable (RESOURCE_EXHAUSTED and
 * ABORTED only with pushback, DEADLINE_EXCEEDED only from a per-attempt
 * timeout) and the method safe; then the attempt cap and the deadline
 * (wake-up plus minAttemptMs and the latency estimate must fit) apply.
 */
export function decideRetry(input: RetryDecisionInput): RetryDecision {
  const { error } = input;
  if (error.cause instanceof BreakerOpenError) return { retry: false, reason: "breaker-open" };
  if (input.replayOverflowed) return { retry: false, reason: "not-replayable" };
  const pushback = parsePushback(error.metadata.get(RETRY_PUSHBACK_HEADER));
  if (pushback?.retry === false) return { retry: false, reason: "pushback" };
  const transparent = wasNotSent(error);
  if (!transparent) {
    const retryableCode =
      input.retryableCodes.includes(error.code) ||
      // Overload (RESOURCE_EXHAUSTED) and a duplicate in flight (ABORTED,
      // IDEMPOTENCY_KEY_IN_USE) are worth retrying only when the server
      // says when, through pushback.
      ((error.code === Code.ResourceExhausted || error.code === Code.Aborted) &&
        pushback !== undefined) ||
      (input.attemptTimedOut && error.code === Code.DeadlineExceeded);
    if (!retryableCode) return { retry: false, reason: "not-retryable" };
    if (!input.safe) return { retry: false, reason: "unsafe" };
  }
  if (input.attempt >= input.maxAttempts) return { retry: false, reason: "max-attempts" };
  const delayMs = pushback?.retry === true ? pushback.delayMs : input.backoffMs;
  if (
    !canSleepAndRetry({
      now: input.now,
      deadlineAt: input.deadlineAt,
      delayMs,
      minAttemptMs: input.minAttemptMs,
      estimatedLatencyMs: input.estimatedLatencyMs,
    })
  ) {
    return { retry: false, reason: "deadline" };
  }
  // A request that never left the client adds no load: it is not paid from the budget.
  return { retry: true, delayMs, transparent, paid: !transparent };
}

/**
 * retryableForHedge says whether a failed hedge leaves room for another:
 * a retryable code or a request that never left, and no open breaker.
 */
export function retryableForHedge(error: ConnectError, retryableCodes: readonly Code[]): boolean {
  if (error.cause instanceof BreakerOpenError) return false;
  return retryableCodes.includes(error.code) || wasNotSent(error);
}
