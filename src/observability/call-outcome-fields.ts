import { create, type DescMessage, isMessage, toJson } from "@bufbuild/protobuf";
import { type Code, ConnectError } from "@connectrpc/connect";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../idempotency/idempotency-key.js";
import type { TraceContext } from "./trace-context.js";
import { formatTraceFlags } from "./trace-context.js";

/**
 * errorCode returns the gRPC code of a call's error, 0 (OK) for none.
 * @private
 */
export function errorCode(error: unknown): { code: Code | 0; error: ConnectError | undefined } {
  if (error === undefined) {
    return OK_OUTCOME;
  }
  const ce = ConnectError.from(error);
  return { code: ce.code, error: ce };
}

// A successful call's outcome, shared: most calls end with it.
const OK_OUTCOME: { code: 0; error: undefined } = Object.freeze({ code: 0, error: undefined });

/**
 * wasReplayed says whether a response (or its error) carries
 * `idempotency-replayed: true`.
 * @private
 */
export function wasReplayed(header: Headers | undefined, error: ConnectError | undefined): boolean {
  return (
    header?.get(IDEMPOTENCY_REPLAYED_HEADER) === "true" ||
    error?.metadata.get(IDEMPOTENCY_REPLAYED_HEADER) === "true"
  );
}

/**
 * traceFields are the log fields naming a span.
 * @private
 */
export function traceFields(ctx: TraceContext): Record<string, string> {
  const fields: Record<string, string> = {
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    trace_flags: formatTraceFlags(ctx.flags),
  };
  if (ctx.parentSpanId !== undefined) {
    fields.parent_span_id = ctx.parentSpanId;
  }
  return fields;
}

/**
 * roundMs keeps microsecond precision in logged durations.
 * @private
 */
export function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/**
 * messageJson renders a message (or init shape) as proto3 JSON for a log
 * line; it never throws (an Any of an unknown type cannot be rendered).
 * @private
 */
export function messageJson(schema: DescMessage, message: unknown): unknown {
  try {
    const m = isMessage(message, schema) ? message : create(schema, message as never);
    return toJson(schema, m);
  } catch (e) {
    return `[not renderable: ${e instanceof Error ? e.message : String(e)}]`;
  }
}
