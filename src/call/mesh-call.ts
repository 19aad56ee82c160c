import { createContextKey } from "@connectrpc/connect";
import type { MeshCallOutcome } from "./attempt.js";

/**
 * MeshCall is what the mesh transport knows about one logical call, handed
 * to its interceptors (and readable by the caller afterwards) as the Connect
 * context value `meshCallKey`. Its fields never change while attempts run:
 * what each attempt does travels with its own Attempt, so concurrent hedges
 * cannot overwrite each other. `attempt` and `endpoint` tell the call's
 * outcome once it has settled.
 */
export interface MeshCall {
  /** target is the transport's target string. */
  readonly target: string;
  /** deadlineAt is the absolute deadline on the transport's clock, or undefined. */
  readonly deadlineAt: number | undefined;
  /**
   * attempt is the number of the attempt whose result became the call's
   * (1 until the call has settled).
   */
  readonly attempt: number;
  /**
   * endpoint is the address that served that attempt (when it was never sent,
   * the latest attempt's that was); undefined when no attempt left the process.
   */
  readonly endpoint: string | undefined;
}

/**
 * createMeshCall returns a call and the writer of its outcome, which the
 * transport hands to the retry step (or the attempt step) as callOutcomeKey.
 * @private
 */
export function createMeshCall(
  target: string,
  deadlineAt: number | undefined,
): { readonly call: MeshCall; readonly report: (outcome: MeshCallOutcome) => void } {
  let outcome: MeshCallOutcome | undefined;
  const call: MeshCall = Object.freeze({
    target,
    deadlineAt,
    get attempt() {
      return outcome?.attempt ?? 1;
    },
    get endpoint() {
      return outcome?.endpoint;
    },
  });
  return {
    call,
    report(o: MeshCallOutcome) {
      outcome = o;
    },
  };
}

/** meshCallKey is the Connect context key of the current MeshCall. */
export const meshCallKey = createContextKey<MeshCall | undefined>(undefined, {
  description: "connect-mesh client call",
});
