import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { breakerStateKey } from "../breaker/breaker-events.js";
import type { ListenerSet } from "../call/listener-set.js";
import { meshCallKey } from "../call/mesh-call.js";
import { onSettled } from "../call/settle.js";
import type { TappedCall } from "../call/tapped-call.js";
import { type Clock, systemClock } from "../clock.js";
import { GRPC_TIMEOUT_HEADER, parseGrpcTimeout } from "../grpc-timeout.js";
import { errorCode, roundMs, traceFields, wasReplayed } from "./call-outcome-fields.js";
import { attemptCountKey, clientParent } from "./client-parent.js";
import { clientTraceContextKey } from "./context-keys.js";
import { codeName, levelForCode, methodType } from "./grpc-fields.js";
import type { MeshMetrics, RpcLabels } from "./metrics.js";
import { createHeaderRedactor } from "./redact-headers.js";
import { childOf, newRootContext, writeTraceHeaders } from "./trace-context.js";
import { validateLogger } from "./validate-logger.js";

/** ClientObserveOptions configures createClientObserveInterceptor. */
export interface ClientObserveOptions {
  /** logger receives one line per finished logical call. */
  readonly logger: Logger;
  /** metrics records `grpc_client_*`; default none. */
  readonly metrics?: MeshMetrics | undefined;
  /** redactHeaders are header names redacted besides the defaults (authorization, cookies). */
  readonly redactHeaders?: readonly string[] | undefined;
  /** logHeaders adds the redacted request and response headers to the call line; default false. */
  readonly logHeaders?: boolean | undefined;
  /**
   * clock times calls; it must be the transport's clock, since a MeshCall's
   * deadline is on it. Default the system clock.
   */
  readonly clock?: Clock | undefined;
  /**
   * tap receives each finished call (redacted headers) while it has
   * listeners; nothing is built while it has none.
   * @private
   */
  readonly tap?: ListenerSet<TappedCall> | undefined;
}

/**
 * createClientObserveInterceptor observes each logical client call (once,
 * however many attempts it takes): the call is a span, child of the incoming
 * call's span inside a handler (or see `clientParent` for the other sources),
 * kept in `clientTraceContextKey` for the attempts and sent as `traceparent`
 * (the attempt interceptor replaces it with each attempt's span). One line
 * per finished call with go-grpc-middleware's client fields plus
 * `grpc.attempts`, `endpoint` and `breaker.state`. It belongs in the
 * `observe` slot of the client chain, outside the retry loop.
 */
export function createClientObserveInterceptor(options: ClientObserveOptions): Interceptor {
  validateLogger(options.logger, "createClientObserveInterceptor");
  const logger = options.logger;
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics;
  const redact = createHeaderRedactor(options.redactHeaders);
  const logHeaders = options.logHeaders === true;
  const tap = options.tap;

  return (next) => async (req) => {
    const started = clock.now();
    const startedAt = Date.now();
    let parent = clientParent(req.contextValues, req.header);
    if (parent instanceof Promise) parent = await parent;
    const span = parent === undefined ? newRootContext() : childOf(parent);
    req.contextValues.set(clientTraceContextKey, span);
    writeTraceHeaders(req.header, span);
    const labels: RpcLabels = {
      service: req.service.typeName,
      method: req.method.name,
      type: methodType(req.method.methodKind),
    };
    const meshCall = req.contextValues.get(meshCallKey);
    const timeoutMs =
      meshCall === undefined
        ? headerTimeoutMs(req.header)
        : meshCall.deadlineAt === undefined
          ? undefined
          : meshCall.deadlineAt - started;
    metrics?.clientStarted(labels);

    const finish = (failure: unknown, resHeader: Headers | undefined) => {
      const { code, error } = errorCode(failure);
      const name = codeName(code);
      const ms = clock.now() - started;
      metrics?.clientHandled(labels, name, ms / 1000);
      const attempts = Math.max(meshCall?.attempt ?? 0, req.contextValues.get(attemptCountKey));
      if (tap?.active === true) {
        tap.emit(
          Object.freeze({
            side: "client",
            method: `${labels.service}/${labels.method}`,
            code: name,
            startedAt,
            durationMs: roundMs(ms),
            traceId: span.traceId,
            ...(meshCall === undefined ? {} : { target: meshCall.target }),
            ...(meshCall?.endpoint === undefined ? {} : { endpoint: meshCall.endpoint }),
            ...(attempts > 0 ? { attempts } : {}),
            ...(error === undefined ? {} : { error: error.rawMessage }),
            header: Object.freeze(redact(req.header)),
          } satisfies TappedCall),
        );
      }
      const level = levelForCode(code);
      if (!logger.isLevelEnabled(level)) return;
      const fields: Record<string, unknown> = {
        ...traceFields(span),
        "grpc.component": "client",
        "grpc.service": labels.service,
        "grpc.method": labels.method,
        "grpc.method_type": labels.type,
        "grpc.code": name,
        "grpc.time_ms": roundMs(ms),
        "grpc.start_time": new Date(startedAt).toISOString(),
      };
      if (timeoutMs !== undefined) {
        fields["grpc.request.deadline"] = new Date(startedAt + timeoutMs).toISOString();
      }
      if (meshCall !== undefined) fields.target = meshCall.target;
      if (attempts > 0) fields["grpc.attempts"] = attempts;
      if (meshCall?.endpoint !== undefined) fields.endpoint = meshCall.endpoint;
      const breaker = req.contextValues.get(breakerStateKey);
      if (breaker !== undefined) fields["breaker.state"] = breaker;
      if (wasReplayed(resHeader, error)) fields["idempotency.replayed"] = true;
      if (error !== undefined) fields["grpc.error"] = error.rawMessage;
      if (logHeaders) {
        fields["grpc.request.header"] = redact(req.header);
        const h = resHeader ?? error?.metadata;
        if (h !== undefined) fields["grpc.response.header"] = redact(h);
      }
      logger[level](fields, "finished call");
    };

    return onSettled(next(req), (e, res) => finish(e, res?.header));
  };
}

function headerTimeoutMs(header: Headers): number | undefined {
  try {
    return parseGrpcTimeout(header.get(GRPC_TIMEOUT_HEADER));
  } catch {
    return undefined;
  }
}
