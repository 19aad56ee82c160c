/**
 * remainingMs is the time left before `deadlineAt` at `now`, never negative;
 * Infinity when there is no deadline.
 */
export function remainingMs(deadlineAt: number | undefined, now: number): number {
  if (deadlineAt === undefined) return Number.POSITIVE_INFINITY;
  return Math.max(0, deadlineAt - now);
}

/** CanSleepAndRetryInput are the facts canSleepAndRetry weighs. */
export interface CanSleepAndRetryInput {
  readonly now: number;
  /** deadlineAt is the call's absolute deadline; undefined means none. */
  readonly deadlineAt: number | undefined;
  /** delayMs is the backoff (or pushback) before the next attempt. */
  readonly delayMs: number;
  /** minAttemptMs is the least time an attempt needs to be worth sending. */
  readonly minAttemptMs: number;
  /** estimatedLatencyMs, when known (say, the endpoint's EWMA), must fit too. */
  readonly estimatedLatencyMs?: number | undefined;
}

/**
 * canSleepAndRetry says whether sleeping `delayMs` and then retrying can still
 * succeed before the deadline. It is false when the wake-up is at or past the
 * deadline, or when the time left after waking is below `minAttemptMs` or the
 * latency estimate: an attempt doomed to hit DEADLINE_EXCEEDED only adds load.
 */
export function canSleepAndRetry(input: CanSleepAndRetryInput): boolean {
  const { now, deadlineAt, delayMs, minAttemptMs, estimatedLatencyMs } = input;
  if (deadlineAt === undefined) return true;
  const wakeAt = now + Math.max(0, delayMs);
  if (wakeAt >= deadlineAt) return false;
  const left = deadlineAt - wakeAt;
  if (left < minAttemptMs) return false;
  if (estimatedLatencyMs !== undefined && left < estimatedLatencyMs) return false;
  return true;
}

/**
 * attemptTimeoutMs is the timeout for one attempt: the per-attempt timeout
 * when set, but never more than the call's remaining time. Infinity means no
 * limit at all.
 */
export function attemptTimeoutMs(
  perAttemptTimeoutMs: number | undefined,
  remaining: number,
): number {
  return Math.min(perAttemptTimeoutMs ?? Number.POSITIVE_INFINITY, remaining);
}

/**
 * Pushback is the server's verdict carried by `grpc-retry-pushback-ms`
 * (gRFC A6): retry after `delayMs` instead of the backoff, or do not retry.
 */
export type Pushback =
  | { readonly retry: true; readonly delayMs: number }
  | { readonly retry: false };

const DO_NOT_RETRY: Pushback = Object.freeze({ retry: false });
const DECIMAL = /^[0-9]+$/;

/**
 * parsePushback reads a `grpc-retry-pushback-ms` header value per gRFC A6:
 * a non-negative decimal integer is a delay; anything else (negative, signs,
 * fractions, empty, beyond Number.MAX_SAFE_INTEGER, or several values joined
 * by commas as `Headers.get` does) means "do not retry". An absent header
 * (null or undefined) returns undefined: the client's own policy applies.
 */
export function parsePushback(value: string | null | undefined): Pushback | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (!DECIMAL.test(text)) return DO_NOT_RETRY;
  const delayMs = Number(text);
  if (!Number.isSafeInteger(delayMs)) return DO_NOT_RETRY;
  return Object.freeze({ retry: true, delayMs });
}
