import type { Interceptor } from "@connectrpc/connect";

/**
 * CLIENT_INTERCEPTOR_ORDER is the fixed order of the client chain, outermost
 * first; buildClientChain assembles the chain by walking it, so this constant
 * is the chain's order, not a description of it. The mesh transport runs the
 * chain once per logical call; everything below the `retry` slot runs once
 * per attempt.
 *
 * User interceptors run first, once per logical call, so they see the call as
 * the application made it and the final outcome after all retries.
 */
export const CLIENT_INTERCEPTOR_ORDER = [
  "user", // MeshTransportOptions.interceptors, in the order given
  "mirror", // copy a share of calls, fire-and-forget, to a shadow target
  "observe", // trace context and one log line + metrics per logical call
  "rate-limit", // optional client-side token bucket per target
  "idempotency-key", // one key per logical call, kept on every attempt
  "retry", // deadline-aware retries and hedging; loops over what follows, and asks
  //          the breaker first: an attempt it would refuse is not built at all
  // --- per attempt from here on ---
  "attempt-observe", // one span per attempt: traceparent with a new span id
  "breaker", // per-method circuit breaker: fail fast while open
  "attempt", // the attempt step: pick an endpoint, rewrite grpc-timeout, send
] as const;

/** ClientSlot names one slot of CLIENT_INTERCEPTOR_ORDER. */
export type ClientSlot = (typeof CLIENT_INTERCEPTOR_ORDER)[number];

/**
 * ClientChainSlots give each interceptor slot its interceptor(s); absent slots
 * are skipped. The `attempt` slot is the step the chain ends in, not an
 * interceptor: composeChain takes it.
 */
export type ClientChainSlots = {
  readonly [S in Exclude<ClientSlot, "attempt">]?: Interceptor | readonly Interceptor[] | undefined;
};

/** buildClientChain lists the client interceptors, outermost first, by walking CLIENT_INTERCEPTOR_ORDER. */
export function buildClientChain(slots: ClientChainSlots): Interceptor[] {
  const chain: Interceptor[] = [];
  for (const slot of CLIENT_INTERCEPTOR_ORDER) {
    if (slot === "attempt") continue;
    const part = slots[slot];
    if (part === undefined) continue;
    if (typeof part === "function") chain.push(part);
    else chain.push(...part);
  }
  return chain;
}

/**
 * composeChain wraps `step` in `interceptors` (outermost first) once, as
 * Connect's applyInterceptors would on every call.
 */
export function composeChain<Req, Res>(
  interceptors: readonly Interceptor[],
  step: (req: Req) => Promise<Res>,
): (req: Req) => Promise<Res> {
  type Next = (req: Req) => Promise<Res>;
  return interceptors.reduceRight<Next>(
    (next, interceptor) => (interceptor as unknown as (next: Next) => Next)(next),
    step,
  );
}
