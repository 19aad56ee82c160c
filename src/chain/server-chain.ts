import type { Interceptor } from "@connectrpc/connect";

/**
 * SERVER_INTERCEPTOR_ORDER is the fixed order of the server chain, outermost
 * first; buildServerChain assembles the chain by walking it. User
 * interceptors run after deadlines are enforced and the call scope is open,
 * and before idempotency, so an auth interceptor can set the principal that
 * scopes keys.
 */
export const SERVER_INTERCEPTOR_ORDER = [
  "observe", // continue the W3C trace, child logger, one log line + metrics per call
  "deadline+scope", // enforce grpc-timeout, open the call scope (carries the context values)
  "authz", // authorization policy on the peer identity: a denied call costs nothing below
  "rate-limit", // token buckets per method / principal: RESOURCE_EXHAUSTED with pushback
  "limit", // max in flight (fixed or adaptive, priority shedding): RESOURCE_EXHAUSTED with pushback
  "user", // MeshServerOptions.interceptors, in the order given (auth sets the principal here)
  "idempotency", // de-duplicate keyed unary calls, replay stored outcomes
  "faults", // fault injection for tests and demos, right before the handler
] as const;

/** ServerSlot names one slot of SERVER_INTERCEPTOR_ORDER. */
export type ServerSlot = (typeof SERVER_INTERCEPTOR_ORDER)[number];

/** ServerChainSlots give each slot its interceptor(s); absent slots are skipped. */
export type ServerChainSlots = {
  readonly [S in ServerSlot]?: Interceptor | readonly Interceptor[] | undefined;
};

/** buildServerChain lists the server interceptors, outermost first, by walking SERVER_INTERCEPTOR_ORDER. */
export function buildServerChain(slots: ServerChainSlots): Interceptor[] {
  const chain: Interceptor[] = [];
  for (const slot of SERVER_INTERCEPTOR_ORDER) {
    const part = slots[slot];
    if (part === undefined) continue;
    if (typeof part === "function") chain.push(part);
    else chain.push(...part);
  }
  return chain;
}
