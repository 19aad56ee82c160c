import type { Interceptor } from "@connectrpc/connect";

/**
 * CLIENT_INTERCEPTOR_ORDER documents the fixed order of the client chain,
 * outermost first. The mesh transport runs the chain once per logical call;
 * everything below the `retry` slot runs once per attempt. Every feature
 * (tracing, idempotency keys, retries, breakers) has its slot here, so their
 * order is decided in this one place.
 *
 * User interceptors run first, once per logical call, so they see the call as
 * the application made it and the final outcome after all retries.
 */
export const CLIENT_INTERCEPTOR_ORDER = [
  "user", // MeshTransportOptions.interceptors, in the order given
  "observe", // trace context and one log line + metrics per logical call
  "idempotency-key", // one key per logical call, kept on every attempt
  "retry", // deadline-aware retries and hedging; loops over what follows, and asks
  //          the breaker first: an attempt it would refuse is not built at all
  // --- per attempt from here on ---
  "attempt-observe", // one span per attempt: traceparent with a new span id
  "breaker", // per-method circuit breaker: fail fast while open
  "attempt", // rewrite grpc-timeout to the time left, pick an endpoint, send
] as const;

/** ClientChainParts are the interceptors of each slot; absent slots are skipped. */
export interface ClientChainParts {
  readonly user: readonly Interceptor[];
  readonly observe?: Interceptor | undefined;
  readonly idempotencyKey?: Interceptor | undefined;
  readonly retry?: Interceptor | undefined;
  readonly attemptObserve?: Interceptor | undefined;
  readonly breaker?: Interceptor | undefined;
}

/** buildClientChain assembles the client interceptors in CLIENT_INTERCEPTOR_ORDER. */
export function buildClientChain(parts: ClientChainParts): Interceptor[] {
  return [
    ...parts.user,
    parts.observe,
    parts.idempotencyKey,
    parts.retry,
    parts.attemptObserve,
    parts.breaker,
  ].filter((i): i is Interceptor => i !== undefined);
}
