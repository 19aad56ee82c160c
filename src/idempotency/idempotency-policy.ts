import { Code } from "@connectrpc/connect";

/**
 * DETERMINISTIC_ERROR_CODES are the errors stored and replayed by default:
 * running the handler again with the same request would fail the same way.
 */
export const DETERMINISTIC_ERROR_CODES: readonly Code[] = Object.freeze([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
]);

/**
 * errorDisposition decides what a failed keyed call leaves behind: `store`
 * the error for replay when its code is in `storedCodes`, else `release` the
 * key so a retry runs the handler (UNAVAILABLE, DEADLINE_EXCEEDED,
 * RESOURCE_EXHAUSTED, ABORTED, CANCELED, INTERNAL, UNKNOWN... are transient:
 * the handler may not have done its work).
 */
export function errorDisposition(code: Code, storedCodes: ReadonlySet<Code>): "store" | "release" {
  return storedCodes.has(code) ? "store" : "release";
}

/**
 * claimLeaseMs is how long a claim stays in progress before another call may
 * take it over: the call's remaining deadline (or maxLeaseMs without one),
 * capped at maxLeaseMs, plus a margin for the time between the deadline and
 * the outcome reaching the store.
 */
export function claimLeaseMs(
  remainingMs: number | undefined,
  maxLeaseMs: number,
  marginMs: number,
): number {
  const budget = remainingMs === undefined ? maxLeaseMs : Math.max(0, remainingMs);
  return Math.min(budget, maxLeaseMs) + marginMs;
}

/**
 * nextPollMs is the wait before a waiting duplicate checks the store again:
 * doubling from `minMs` up to `maxMs`, and never past the lease's end (when
 * the owner's outcome, or the takeover, is due).
 */
export function nextPollMs(
  previousMs: number | undefined,
  leaseRemainingMs: number,
  minMs: number,
  maxMs: number,
): number {
  const grown = previousMs === undefined ? minMs : Math.min(previousMs * 2, maxMs);
  return Math.max(1, Math.min(grown, leaseRemainingMs + 1));
}

/**
 * renewalLeaseMs is the lease an owner's heartbeat asks for `sinceClaimMs`
 * after its claim: `leaseMs`, but never past `horizonMs` from the claim (the
 * claimLeaseMs of the call: its deadline, capped, plus a margin), so a
 * handler that hangs past its deadline lets its key go as a fixed lease
 * would. Undefined: the horizon has passed; stop renewing.
 */
export function renewalLeaseMs(
  sinceClaimMs: number,
  horizonMs: number,
  leaseMs: number,
): number | undefined {
  const left = horizonMs - sinceClaimMs;
  return left > 0 ? Math.min(leaseMs, left) : undefined;
}
