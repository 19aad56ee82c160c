import { Code } from "@connectrpc/connect";

/**
 * CallOutcome is the per-call feedback every decision consumes: pickers (load),
 * outlier detectors and breakers (health). One shape keeps one `done` hook able
 * to feed all of them.
 */
export interface CallOutcome {
  /** ok is true when the call completed without error. */
  readonly ok: boolean;
  /** code is the gRPC/Connect status code of a failed call (same numbers). */
  readonly code?: number;
  /** latencyMs is the time from pick (or admission) to completion. */
  readonly latencyMs: number;
  /**
   * latencySample false says the latency includes a one-off cost (the first
   * call on a new connection pays its handshake) and must not feed load
   * estimates; default true.
   */
  readonly latencySample?: boolean;
  /**
   * pushbackMs is the server's `grpc-retry-pushback-ms` on a RESOURCE_EXHAUSTED
   * answer (it shed the call): load-aware balancing penalises the endpoint
   * for that long (LoadPenalty).
   */
  readonly pushbackMs?: number;
}

/**
 * DEFAULT_FAILURE_CODES are the codes that say "this server is unhealthy", as
 * opposed to "this request is wrong": UNAVAILABLE, INTERNAL, UNKNOWN and
 * DEADLINE_EXCEEDED. A NOT_FOUND or INVALID_ARGUMENT is the server working
 * correctly, so it must not eject an endpoint or open a breaker.
 */
export const DEFAULT_FAILURE_CODES: readonly Code[] = Object.freeze([
  Code.Unavailable,
  Code.Internal,
  Code.Unknown,
  Code.DeadlineExceeded,
]);

/** FailureClassifier says whether an outcome counts as a health failure. */
export type FailureClassifier = (outcome: Pick<CallOutcome, "ok" | "code">) => boolean;

/**
 * createFailureClassifier counts an outcome as a failure when it is not ok and
 * its code is in `codes` (default DEFAULT_FAILURE_CODES). A failed outcome
 * without a code counts as UNKNOWN, the code Connect gives unclassified errors.
 */
export function createFailureClassifier(
  codes: readonly number[] = DEFAULT_FAILURE_CODES,
): FailureClassifier {
  validateFailureCodes(codes);
  // A bit mask over the 17 codes makes classification one AND on the hot path.
  let mask = 0;
  for (const code of codes) mask |= 1 << code;
  return (outcome) => !outcome.ok && (mask & (1 << (outcome.code ?? Code.Unknown))) !== 0;
}

/**
 * validateFailureCodes throws a RangeError naming a code outside 1..16
 * (0 is OK, which is never a failure).
 * @private
 */
export function validateFailureCodes(codes: readonly number[]): void {
  for (const code of codes) {
    if (!Number.isInteger(code) || code < 1 || code > 16) {
      throw new RangeError(`failure code ${code} must be an integer in 1..16`);
    }
  }
}
