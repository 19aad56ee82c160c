import { Code } from "@connectrpc/connect";
import type { Backoff } from "../call/backoff.js";
import type { DeadLetterReason } from "./queue.js";

/**
 * QUEUE_TRANSIENT_CODES are the errors a queued call is retried on: the
 * handler may succeed when run again. Everything else is permanent and goes
 * straight to the dead-letter list. INTERNAL and UNKNOWN are here, unlike in
 * client retries: a queued job has no caller waiting, so a bug fixed by a
 * deploy or a crashed dependency is worth another attempt.
 */
export const QUEUE_TRANSIENT_CODES: readonly Code[] = Object.freeze([
  Code.Unavailable,
  Code.DeadlineExceeded,
  Code.ResourceExhausted,
  Code.Aborted,
  Code.Internal,
  Code.Unknown,
]);

/** FailureInput is what the decision about a failed attempt depends on. */
export interface FailureInput {
  readonly code: Code;
  /** attempt is the attempt that failed, 1-based. */
  readonly attempt: number;
  readonly maxAttempts: number;
  /** nowMs and expiresAt are wall-clock epoch ms. */
  readonly nowMs: number;
  readonly expiresAt: number;
  readonly transientCodes: ReadonlySet<Code>;
  readonly backoff: Backoff;
}

/** FailureDecision is what to do with a failed attempt. */
export type FailureDecision =
  | { readonly kind: "retry"; readonly delayMs: number }
  | { readonly kind: "dead"; readonly reason: DeadLetterReason };

/**
 * decideFailure says whether a failed attempt is retried, and after how long:
 * transient codes are retried with the backoff's delay while attempts are
 * left and the retry would start before the job expires; a permanent code
 * is `failed`, used-up attempts `exhausted`, and a retry that would start
 * past the expiry `expired` (it could never run).
 */
export function decideFailure(input: FailureInput): FailureDecision {
  if (!input.transientCodes.has(input.code)) {
    return { kind: "dead", reason: "failed" };
  }
  if (input.attempt >= input.maxAttempts) {
    return { kind: "dead", reason: "exhausted" };
  }
  const delayMs = Math.round(input.backoff.delayMs(input.attempt));
  if (input.nowMs + delayMs >= input.expiresAt) {
    return { kind: "dead", reason: "expired" };
  }
  return { kind: "retry", delayMs };
}
