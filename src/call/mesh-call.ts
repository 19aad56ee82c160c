import { createContextKey } from "@connectrpc/connect";

/**
 * MeshCall is the per-logical-call state the mesh transport hands to its
 * interceptors as the Connect context value `meshCallKey`: the one deadline
 * that covers every attempt, and what each attempt did.
 */
export interface MeshCall {
  /** target is the transport's target string. */
  readonly target: string;
  /** deadlineAt is the absolute deadline on the transport's clock, or undefined. */
  readonly deadlineAt: number | undefined;
  /** attempt is the 1-based number of the attempt in flight (retries raise it). */
  attempt: number;
  /** endpoint is the address picked for the latest attempt, once picked. */
  endpoint: string | undefined;
  /**
   * avoidEndpoints lists endpoints later attempts should avoid when others
   * are ready: those of failed attempts and of hedges still in flight.
   */
  readonly avoidEndpoints: string[];
}

// Per-attempt deadlines are keyed by the attempt's signal: attempts (hedges)
// of one call run concurrently and share the call's context values.
const attemptDeadlines = new WeakMap<AbortSignal, number>();

/**
 * setAttemptDeadline records a per-attempt deadline (clock time) for the
 * attempt whose request carries `signal`; the attempt step announces
 * min(call deadline, attempt deadline) in `grpc-timeout`.
 * @private
 */
export function setAttemptDeadline(signal: AbortSignal, deadlineAt: number): void {
  attemptDeadlines.set(signal, deadlineAt);
}

/** attemptDeadline returns the per-attempt deadline of `signal`, if any. @private */
export function attemptDeadline(signal: AbortSignal): number | undefined {
  return attemptDeadlines.get(signal);
}

/** meshCallKey is the Connect context key of the current MeshCall. */
export const meshCallKey = createContextKey<MeshCall | undefined>(undefined, {
  description: "connect-mesh client call",
});
