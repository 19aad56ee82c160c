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
}

/** meshCallKey is the Connect context key of the current MeshCall. */
export const meshCallKey = createContextKey<MeshCall | undefined>(undefined, {
  description: "connect-mesh client call",
});
