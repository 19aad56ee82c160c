import { type ContextValues, createContextKey } from "@connectrpc/connect";
import { currentCallScope } from "../call/call-scope.js";
import { traceContextKey } from "./context-keys.js";
import { activeOtelContext } from "./otel.js";
import { type TraceContext, traceContextFromHeaders } from "./trace-context.js";

/**
 * clientParent finds the parent span of an outgoing call, first found wins:
 * a TraceContext the caller put in the call's context values under
 * `traceContextKey`; the incoming call's span when called inside a handler
 * (the call scope); a valid `traceparent` the caller set on the request
 * (forwarding); the active OpenTelemetry span; none (a new trace starts).
 * The scope beats a forwarded header because a handler that copies incoming
 * headers would otherwise make its call a sibling of its own span.
 * @private
 */
export function clientParent(
  values: ContextValues,
  header: Headers,
): TraceContext | undefined | Promise<TraceContext | undefined> {
  return (
    values.get(traceContextKey) ??
    currentCallScope()?.values.get(traceContextKey) ??
    traceContextFromHeaders(header) ??
    activeOtelContext()
  );
}

/**
 * attemptCountKey counts attempts made through the attempt interceptor, for
 * transports that keep no MeshCall.
 * @private
 */
export const attemptCountKey = createContextKey<number>(0, {
  description: "connect-mesh attempts observed",
});
