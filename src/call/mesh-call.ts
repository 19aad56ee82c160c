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
  const call = new MeshCallRecord(target, deadlineAt);
  return { call, report: (outcome) => MeshCallRecord.settle(call, outcome) };
}

// A class with its getters on the prototype: a frozen object literal with
// accessors, built per call, showed in client profiles. The outcome lives in
// a private field, which freezing the instance leaves writable.
class MeshCallRecord implements MeshCall {
  #outcome: MeshCallOutcome | undefined;

  constructor(
    readonly target: string,
    readonly deadlineAt: number | undefined,
  ) {
    Object.freeze(this);
  }

  /** settle records the outcome; only createMeshCall's writer reaches it. */
  static settle(call: MeshCallRecord, outcome: MeshCallOutcome): void {
    call.#outcome = outcome;
  }

  get attempt(): number {
    return this.#outcome?.attempt ?? 1;
  }

  get endpoint(): string | undefined {
    return this.#outcome?.endpoint;
  }
}

/** meshCallKey is the Connect context key of the current MeshCall. */
export const meshCallKey = createContextKey<MeshCall | undefined>(undefined, {
  description: "connect-mesh client call",
});
