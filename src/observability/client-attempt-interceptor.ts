import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { attemptKey, withAttempt, withPicked } from "../call/attempt.js";
import { meshCallKey } from "../call/mesh-call.js";
import { onSettled } from "../call/settle.js";
import { type Clock, systemClock } from "../clock.js";
import { errorCode, roundMs, traceFields } from "./call-outcome-fields.js";
import { attemptCountKey, clientParent } from "./client-parent.js";
import { clientTraceContextKey } from "./context-keys.js";
import { codeName } from "./grpc-fields.js";
import { childOf, newRootContext, type TraceContext, writeTraceHeaders } from "./trace-context.js";
import { validateLogger } from "./validate-logger.js";

/** ClientAttemptOptions configures createClientAttemptInterceptor. */
export interface ClientAttemptOptions {
  /** logger receives one debug line per finished attempt. */
  readonly logger: Logger;
  /** clock times attempts; default the system clock. */
  readonly clock?: Clock | undefined;
}

/**
 * createClientAttemptInterceptor makes each attempt of a call its own span,
 * a child of the logical call's span (`clientTraceContextKey`, set by the
 * client observe interceptor; found the same way when that one is absent):
 * it sets `traceparent` with a new span id, and `tracestate`, on every
 * attempt, and logs each finished attempt at debug with its `attempt`
 * number, `endpoint` and outcome. It belongs in the `attempt-observe` slot,
 * inside the retry loop.
 */
export function createClientAttemptInterceptor(options: ClientAttemptOptions): Interceptor {
  validateLogger(options.logger, "createClientAttemptInterceptor");
  const logger = options.logger;
  const clock = options.clock ?? systemClock;

  // Not async: an attempt that finds its call's span (the usual case) costs
  // no promise of its own here. A synchronous throw still rejects.
  return (next) => (req) => {
    try {
      const call = req.contextValues.get(clientTraceContextKey);
      if (call !== undefined) return observeAttempt(next, req, call);
      const parent = clientParent(req.contextValues, req.header);
      return parent instanceof Promise
        ? parent.then((p) => observeAttempt(next, req, rootOrChild(req, p)))
        : observeAttempt(next, req, rootOrChild(req, parent));
    } catch (e) {
      return Promise.reject(e);
    }
  };

  function observeAttempt(
    next: Parameters<Interceptor>[0],
    req: Parameters<Parameters<Interceptor>[0]>[0],
    call: TraceContext,
  ) {
    const count = req.contextValues.get(attemptCountKey) + 1;
    req.contextValues.set(attemptCountKey, count);
    const span = childOf(call);
    writeTraceHeaders(req.header, span);
    if (!logger.isLevelEnabled("debug")) {
      return next(req);
    }
    // The retry step numbers attempts (hedges and refused attempts included);
    // without it this is the only attempt.
    const attempt = req.contextValues.get(attemptKey);
    const number = attempt?.number ?? count;
    // The endpoint comes back through the attempt's own hook, never through
    // state shared with concurrent hedges.
    let endpoint: string | undefined;
    const observed =
      attempt === undefined
        ? req
        : {
            ...req,
            contextValues: withAttempt(
              req.contextValues,
              withPicked(attempt, (e) => {
                endpoint = e;
              }),
            ),
          };

    const started = clock.now();
    const finish = (failure: unknown) => {
      const { code, error } = errorCode(failure);
      const fields: Record<string, unknown> = {
        ...traceFields(span),
        "grpc.component": "client",
        "grpc.service": req.service.typeName,
        "grpc.method": req.method.name,
        attempt: number,
        "grpc.code": codeName(code),
        "grpc.time_ms": roundMs(clock.now() - started),
      };
      const served =
        endpoint ??
        (attempt === undefined ? req.contextValues.get(meshCallKey)?.endpoint : undefined);
      if (served !== undefined) fields.endpoint = served;
      if (attempt !== undefined && attempt.avoid.length > 0) fields.avoid = attempt.avoid;
      if (error !== undefined) fields["grpc.error"] = error.rawMessage;
      logger.debug(fields, "finished attempt");
    };
    return onSettled(next(observed as typeof req), finish);
  }
}

/** rootOrChild makes the span of a call without one and keeps it for its later attempts. */
function rootOrChild(
  req: Parameters<Parameters<Interceptor>[0]>[0],
  parent: TraceContext | undefined,
): TraceContext {
  const call = parent === undefined ? newRootContext() : childOf(parent);
  req.contextValues.set(clientTraceContextKey, call);
  return call;
}
