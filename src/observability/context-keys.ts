import { createContextKey } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { TraceContext } from "./trace-context.js";

/**
 * traceContextKey holds the span of the incoming call on the server (set by
 * the server observe interceptor, visible to handlers through `ctx.values` and
 * `currentTraceContext()`). Set on a client call's context values, it names
 * the parent of the outgoing call explicitly.
 */
export const traceContextKey = createContextKey<TraceContext | undefined>(undefined, {
  description: "connect-mesh trace context",
});

/**
 * clientTraceContextKey holds the span of an outgoing logical call, set by
 * the client observe interceptor; each attempt is a child of it.
 */
export const clientTraceContextKey = createContextKey<TraceContext | undefined>(undefined, {
  description: "connect-mesh client call trace context",
});

/**
 * loggerKey holds the incoming call's pino child logger, bound to its trace
 * and rpc fields. Handlers read it with `ctx.values.get(loggerKey)`, or call
 * `currentLogger()` anywhere in the call.
 */
export const loggerKey = createContextKey<Logger | undefined>(undefined, {
  description: "connect-mesh call logger",
});
