import { createContextKey } from "@connectrpc/connect";
import type { CircuitState, CircuitTransition } from "./circuit-breaker.js";

/** BreakerEvent is a breaker state change, for logging (warn) and metrics. */
export interface BreakerEvent {
  readonly type: "breaker";
  readonly key: string;
  readonly from: CircuitState["type"];
  readonly to: CircuitState["type"];
  readonly reason: CircuitTransition["reason"];
  readonly at: number;
}

/** breakerStateKey holds the state of the breaker that admitted the call's latest attempt. */
export const breakerStateKey = createContextKey<CircuitState["type"] | undefined>(undefined, {
  description: "connect-mesh breaker state",
});
