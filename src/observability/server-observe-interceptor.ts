import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ListenerSet } from "../call/listener-set.js";
import { peerIdentityKey, principalOf } from "../call/peer-identity.js";
import { peerKey, serverCallKey } from "../call/server-call.js";
import { onSettled } from "../call/settle.js";
import type { TappedCall } from "../call/tapped-call.js";
import { type Clock, systemClock } from "../clock.js";
import { GRPC_TIMEOUT_HEADER, parseGrpcTimeout } from "../grpc-timeout.js";
import { type CallLogger, createCallLoggerFactory } from "./call-logger.js";
import {
  errorCode,
  messageJson,
  roundMs,
  traceFields,
  wasReplayed,
} from "./call-outcome-fields.js";
import { loggerKey, traceContextKey } from "./context-keys.js";
import { codeName, levelForCode, methodType } from "./grpc-fields.js";
import { isoTime } from "./iso-time.js";
import type { MeshMetrics, RpcLabels } from "./metrics.js";
import { activeOtelContext } from "./otel.js";
import { createHeaderRedactor } from "./redact-headers.js";
import {
  childOf,
  newRootContext,
  type TraceContext,
  traceContextFromHeaders,
} from "./trace-context.js";
import { validateLogger } from "./validate-logger.js";

/** ServerObserveOptions configures createServerObserveInterceptor. */
export interface ServerObserveOptions {
  /** logger is the root logger; each call gets a child bound to its trace and rpc fields. */
  readonly logger: Logger;
  /** metrics records `grpc_server_*` and idempotency replays; default none. */
  readonly metrics?: MeshMetrics | undefined;
  /**
   * redact are pino redact paths applied to every line of the call (handler
   * lines too), e.g. `["grpc.request.content"].password`. They replace the
   * root logger's own redact paths for these lines. Default none.
   */
  readonly redact?: readonly string[] | undefined;
  /** redactHeaders are header names redacted besides the defaults (authorization, cookies). */
  readonly redactHeaders?: readonly string[] | undefined;
  /** logHeaders adds the redacted request and response headers to the call line; default false. */
  readonly logHeaders?: boolean | undefined;
  /** logPayloads adds unary request and response messages (proto3 JSON) to the call line; default false. */
  readonly logPayloads?: boolean | undefined;
  /** clock times calls; default the system clock. */
  readonly clock?: Clock | undefined;
  /**
   * tap receives each finished call (redacted headers) while it has
   * listeners; nothing is built while it has none.
   * @private
   */
  readonly tap?: ListenerSet<TappedCall> | undefined;
}

/**
 * createServerObserveInterceptor observes every incoming call: it continues
 * the caller's W3C trace with a new span (or starts a trace when the caller
 * sent no valid `traceparent`), hands the span and a pino child logger to the
 * call through `traceContextKey` and `loggerKey`, and writes one line per
 * finished call with go-grpc-middleware's fields, at a level chosen by the
 * code (see CODE_LOG_LEVELS). Streams are logged when the response stream
 * ends. It belongs in the `observe` slot, outside the call scope.
 *
 * When `@opentelemetry/api` is installed and a span of the same trace is
 * active (an HTTP instrumentation's server span), that span is the parent.
 */
export function createServerObserveInterceptor(options: ServerObserveOptions): Interceptor {
  validateLogger(options.logger, "createServerObserveInterceptor");
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics;
  const redact = createHeaderRedactor(options.redactHeaders);
  const logHeaders = options.logHeaders === true;
  const logPayloads = options.logPayloads === true;
  const tap = options.tap;
  const base =
    options.redact === undefined || options.redact.length === 0
      ? options.logger
      : options.logger.child({}, { redact: [...options.redact] });
  const callLoggers = createCallLoggerFactory(base);
  // Per method, once: its metric labels and the logger its lines go through,
  // bound to the method's fields (rendered once by pino, not on every line).
  const methods = new WeakMap<DescMethod, MethodFacts>();
  const factsOf = (method: DescMethod): MethodFacts => {
    let facts = methods.get(method);
    if (facts === undefined) {
      const labels = labelsOf(method);
      facts = {
        labels,
        callLogger: callLoggers({
          "grpc.component": "server",
          "grpc.service": labels.service,
          "grpc.method": labels.method,
          "grpc.method_type": labels.type,
        }),
      };
      methods.set(method, facts);
    }
    return facts;
  };

  // Not async: once the OpenTelemetry API is loaded (or known absent), a
  // call costs no extra promise here. A synchronous throw still rejects.
  return (next) => (req) => {
    const started = clock.now();
    const startedAt = Date.now();
    try {
      const otel = activeOtelContext();
      return otel instanceof Promise
        ? otel.then((o) => observeCall(next, req, started, startedAt, o))
        : observeCall(next, req, started, startedAt, otel);
    } catch (e) {
      return Promise.reject(e);
    }
  };

  function observeCall(
    next: Parameters<Interceptor>[0],
    req: Parameters<Parameters<Interceptor>[0]>[0],
    started: number,
    startedAt: number,
    otel: TraceContext | undefined,
  ) {
    const incoming = traceContextFromHeaders(req.header);
    const span = childOrRoot(
      otel !== undefined && (incoming === undefined || otel.traceId === incoming.traceId)
        ? otel
        : incoming,
    );
    const { labels, callLogger } = factsOf(req.method);
    const call = req.contextValues.get(serverCallKey);
    // With mTLS, the caller's verified SPIFFE ID (absent for anonymous peers).
    const peerIdentity = principalOf(req.contextValues.get(peerIdentityKey));
    const timeoutMs = call === undefined ? headerTimeoutMs(req.header) : call.timeoutMs();
    const peer = call?.peerAddress ?? req.contextValues.get(peerKey);
    // The call's fields and child logger are built only if a line is written.
    const log = callLogger(() => {
      const fields: Record<string, unknown> = traceFields(span);
      fields["peer.address"] = peer;
      if (peerIdentity !== undefined) fields["peer.identity"] = peerIdentity;
      return fields;
    });
    req.contextValues.set(traceContextKey, span);
    req.contextValues.set(loggerKey, log.logger);
    metrics?.serverStarted(labels);

    const finish = (failure: unknown, resHeader: Headers | undefined, response?: unknown) => {
      const { code, error } = errorCode(failure);
      const name = codeName(code);
      const ms = clock.now() - started;
      const replayed = wasReplayed(resHeader, error);
      if (metrics !== undefined) {
        metrics.serverHandled(labels, name, ms / 1000);
        if (replayed) metrics.idempotencyReplayed(labels);
      }
      if (tap?.active === true) {
        tap.emit(
          Object.freeze({
            side: "server",
            method: `${labels.service}/${labels.method}`,
            code: name,
            startedAt,
            durationMs: roundMs(ms),
            traceId: span.traceId,
            ...(peer === undefined ? {} : { peer }),
            ...(error === undefined ? {} : { error: error.rawMessage }),
            header: Object.freeze(redact(req.header)),
          } satisfies TappedCall),
        );
      }
      const level = levelForCode(code);
      if (!log.isLevelEnabled(level)) return;
      const fields: Record<string, unknown> = {
        "grpc.code": name,
        "grpc.time_ms": roundMs(ms),
        "grpc.start_time": isoTime(startedAt),
      };
      if (timeoutMs !== undefined) {
        fields["grpc.request.deadline"] = isoTime(startedAt + timeoutMs);
      }
      if (replayed) fields["idempotency.replayed"] = true;
      if (error !== undefined) fields["grpc.error"] = error.rawMessage;
      if (logHeaders) {
        fields["grpc.request.header"] = redact(req.header);
        const h = resHeader ?? error?.metadata;
        if (h !== undefined) fields["grpc.response.header"] = redact(h);
      }
      if (logPayloads && !req.stream) {
        fields["grpc.request.content"] = messageJson(req.method.input, req.message);
        if (response !== undefined) {
          fields["grpc.response.content"] = messageJson(req.method.output, response);
        }
      }
      log.write(level, fields, "finished call");
    };

    return onSettled(next(req), (e, res) =>
      finish(e, res?.header, res === undefined || res.stream ? undefined : res.message),
    );
  }
}

/** MethodFacts are what one method's calls share: labels and call logger constructor. */
interface MethodFacts {
  readonly labels: RpcLabels;
  readonly callLogger: (bindings: () => Record<string, unknown>) => CallLogger;
}

// The metric labels of each method, made once: they are the same every call.
const labelCache = new WeakMap<DescMethod, RpcLabels>();

function labelsOf(method: DescMethod): RpcLabels {
  let labels = labelCache.get(method);
  if (labels === undefined) {
    labels = Object.freeze({
      service: method.parent.typeName,
      method: method.name,
      type: methodType(method.methodKind),
    });
    labelCache.set(method, labels);
  }
  return labels;
}

function childOrRoot(parent: TraceContext | undefined): TraceContext {
  return parent === undefined ? newRootContext() : childOf(parent);
}

function headerTimeoutMs(header: Headers): number | undefined {
  try {
    return parseGrpcTimeout(header.get(GRPC_TIMEOUT_HEADER));
  } catch {
    return undefined;
  }
}
