import type { Interceptor } from "@connectrpc/connect";
import { createServerDeadlineInterceptor } from "./deadline-interceptor.js";

/**
 * SERVER_INTERCEPTOR_ORDER documents the fixed order of the server chain,
 * outermost first. Every feature has its slot here. User interceptors run
 * after deadlines are enforced and the call scope is open, and before
 * idempotency, so an auth interceptor can set the principal that scopes keys.
 */
export const SERVER_INTERCEPTOR_ORDER = [
  "observe", // continue the W3C trace, child logger, one log line + metrics per call
  "deadline+scope", // enforce grpc-timeout, open the call scope (carries the context values)
  "limit", // per-method max in flight: RESOURCE_EXHAUSTED with pushback
  "user", // MeshServerOptions.interceptors, in the order given (auth sets the principal here)
  "idempotency", // de-duplicate keyed unary calls, replay stored outcomes
  "faults", // fault injection for tests and demos, right before the handler
] as const;

/** ServerChainParts are the interceptors of each slot; absent slots are skipped. */
export interface ServerChainParts {
  readonly observe?: Interceptor | undefined;
  readonly limit?: Interceptor | undefined;
  readonly user: readonly Interceptor[];
  readonly idempotency?: Interceptor | undefined;
  readonly faults?: Interceptor | undefined;
}

/** buildServerChain assembles the server interceptors in SERVER_INTERCEPTOR_ORDER. */
export function buildServerChain(parts: ServerChainParts): Interceptor[] {
  return [
    parts.observe,
    createServerDeadlineInterceptor(),
    parts.limit,
    ...parts.user,
    parts.idempotency,
    parts.faults,
  ].filter((i): i is Interceptor => i !== undefined);
}
