import type { TraceContext } from "./trace-context.js";
import { normalizeTracestate } from "./tracestate.js";

/** The slice of `@opentelemetry/api` we use; the SDK is never needed. */
interface OtelApi {
  readonly context: { active(): unknown };
  readonly trace: {
    getSpanContext(context: never):
      | {
          readonly traceId: string;
          readonly spanId: string;
          readonly traceFlags: number;
          readonly traceState?: { serialize(): string } | undefined;
        }
      | undefined;
  };
  isSpanContextValid(spanContext: never): boolean;
}

// undefined: not tried yet; null: tried, not installed.
let api: OtelApi | null | undefined;
let loading: Promise<OtelApi | null> | undefined;

/**
 * loadOtel imports `@opentelemetry/api` once, when installed (an optional
 * peer), and caches the outcome; later calls resolve at once.
 * @private
 */
export function loadOtel(): Promise<OtelApi | null> {
  if (api !== undefined) {
    return Promise.resolve(api);
  }
  loading ??= import("@opentelemetry/api").then(
    (m) => {
      api = m as unknown as OtelApi;
      return api;
    },
    () => {
      api = null;
      return null;
    },
  );
  return loading;
}

/**
 * otelActiveContext returns the trace context of the active OpenTelemetry
 * span, when the API is loaded and a valid span is active. Without an SDK and
 * a context manager there never is one. Never throws.
 * @private
 */
export function otelActiveContext(): TraceContext | undefined {
  if (api === undefined || api === null) {
    return undefined;
  }
  try {
    const sc = api.trace.getSpanContext(api.context.active() as never);
    if (sc === undefined || !api.isSpanContextValid(sc as never)) {
      return undefined;
    }
    const tracestate = normalizeTracestate(sc.traceState?.serialize());
    const ctx = { traceId: sc.traceId, spanId: sc.spanId, flags: sc.traceFlags & 0xff };
    return tracestate === undefined ? ctx : { ...ctx, tracestate };
  } catch {
    return undefined;
  }
}

/**
 * activeOtelContext loads the API if needed (once) and returns the active
 * span's trace context. An already-loaded API costs no await.
 * @private
 */
export function activeOtelContext(): TraceContext | undefined | Promise<TraceContext | undefined> {
  if (api !== undefined) {
    return otelActiveContext();
  }
  return loadOtel().then(() => otelActiveContext());
}
