import { randomFillSync } from "node:crypto";
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from "../call/headers.js";
import { normalizeTracestate } from "./tracestate.js";

export { TRACEPARENT_HEADER, TRACESTATE_HEADER };

/** TRACE_FLAG_SAMPLED is the `sampled` bit of trace-flags. */
export const TRACE_FLAG_SAMPLED = 0x01;

/**
 * TraceContext is one span's place in a W3C trace: what `traceparent` and
 * `tracestate` carry, plus the parent span id for logs.
 */
export interface TraceContext {
  /** traceId is 32 lowercase hex characters, not all zero. */
  readonly traceId: string;
  /** spanId is this span's id, 16 lowercase hex characters, not all zero. */
  readonly spanId: string;
  /** parentSpanId is the span this one is a child of, when known. */
  readonly parentSpanId?: string;
  /** flags are the trace-flags byte (bit 0: sampled). */
  readonly flags: number;
  /** tracestate is the normalized vendor list to propagate, when any. */
  readonly tracestate?: string;
}

// Only the flags of Trace Context Level 1 and 2 (sampled, random) are passed
// on; the spec says unknown flags must be zeroed by vendors who propagate.
const KNOWN_FLAGS = 0x03;

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const HEX2 = /^[0-9a-f]{2}$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_SPAN_ID = "0".repeat(16);

/**
 * parseTraceparent reads a `traceparent` value as the W3C spec says, or
 * returns undefined for an invalid one (the receiver then starts a new
 * trace). Version `00` must be exactly `00-<32 hex>-<16 hex>-<2 hex>`,
 * lowercase; version `ff` is invalid; a higher version is read by its first
 * four fields when what follows them is empty or starts with `-` (only its
 * `sampled` flag is kept). All-zero
 * trace or span ids are invalid. Never throws.
 */
export function parseTraceparent(value: string | null | undefined): TraceContext | undefined {
  if (typeof value !== "string") {
    return undefined;
  }
  // The common case, a version 00 header without white space, is one regex.
  if (value.length === 55 && TRACEPARENT_00.test(value)) {
    return fromFields(value, Number.parseInt(value.slice(53, 55), 16));
  }
  const v = value.replace(/^[ \t]+|[ \t]+$/g, "");
  if (v.length < 55) {
    return undefined;
  }
  const version = v.slice(0, 2);
  if (!HEX2.test(version) || version === "ff") {
    return undefined;
  }
  if (version === "00" && v.length !== 55) {
    return undefined;
  }
  if (v.length > 55 && v[55] !== "-") {
    return undefined;
  }
  if (v[2] !== "-" || v[35] !== "-" || v[52] !== "-") {
    return undefined;
  }
  if (!HEX32.test(v.slice(3, 35)) || !HEX16.test(v.slice(36, 52)) || !HEX2.test(v.slice(53, 55))) {
    return undefined;
  }
  // A later version's flags may mean other things; only `sampled` is known.
  const parsedFlags = Number.parseInt(v.slice(53, 55), 16);
  return fromFields(v, version === "00" ? parsedFlags : parsedFlags & TRACE_FLAG_SAMPLED);
}

// TRACEPARENT_00 is a whole version 00 header; ids still need the zero check.
const TRACEPARENT_00 = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** fromFields reads the ids of a checked traceparent `v`; all-zero ids are invalid. */
function fromFields(v: string, flags: number): TraceContext | undefined {
  const traceId = v.slice(3, 35);
  const spanId = v.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) {
    return undefined;
  }
  return { traceId, spanId, flags };
}

/** formatTraceparent renders a version `00` traceparent for `ctx`. */
export function formatTraceparent(ctx: TraceContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${formatTraceFlags(ctx.flags)}`;
}

/** formatTraceFlags renders trace-flags as two lowercase hex digits, as logged. */
export function formatTraceFlags(flags: number): string {
  return FLAGS_HEX[flags & 0xff] as string;
}

// Every trace-flags byte as two hex digits, made once: a call line and a
// traceparent each render one.
const FLAGS_HEX: readonly string[] = Array.from({ length: 256 }, (_, i) =>
  i.toString(16).padStart(2, "0"),
);

/**
 * traceContextFromHeaders reads `traceparent` and `tracestate` from request
 * headers. tracestate is only read when traceparent is valid, as the spec
 * says; an invalid tracestate is dropped and the traceparent kept.
 */
export function traceContextFromHeaders(headers: Headers): TraceContext | undefined {
  const parent = parseTraceparent(headers.get(TRACEPARENT_HEADER));
  if (parent === undefined) {
    return undefined;
  }
  const tracestate = normalizeTracestate(headers.get(TRACESTATE_HEADER));
  return tracestate === undefined ? parent : { ...parent, tracestate };
}

/** writeTraceHeaders sets `traceparent` and `tracestate` (or removes a stale one). */
export function writeTraceHeaders(headers: Headers, ctx: TraceContext): void {
  headers.set(TRACEPARENT_HEADER, formatTraceparent(ctx));
  if (ctx.tracestate === undefined) {
    headers.delete(TRACESTATE_HEADER);
  } else {
    headers.set(TRACESTATE_HEADER, ctx.tracestate);
  }
}

/** NewRootOptions configures newRootContext. */
export interface NewRootOptions {
  /** sampled sets the sampled flag; default true (every call is logged). */
  readonly sampled?: boolean;
}

/** newRootContext starts a new trace: fresh random trace and span ids. */
export function newRootContext(options: NewRootOptions = {}): TraceContext {
  return {
    traceId: randomHexId(16),
    spanId: randomHexId(8),
    flags: options.sampled === false ? 0 : TRACE_FLAG_SAMPLED,
  };
}

/**
 * childOf returns a new span of `parent`'s trace: a fresh span id, the parent's
 * span id as parentSpanId, its known flags and its tracestate.
 */
export function childOf(parent: TraceContext): TraceContext {
  const child = {
    traceId: parent.traceId,
    spanId: randomHexId(8),
    parentSpanId: parent.spanId,
    flags: parent.flags & KNOWN_FLAGS,
  };
  return parent.tracestate === undefined ? child : { ...child, tracestate: parent.tracestate };
}

// Ids come from a pool filled by the CSPRNG in one call and rendered as hex
// in one call, since a crypto call per id costs more than the rest of a
// span's bookkeeping; an id is then a slice of that string.
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolHex = "";
let poolOffset = POOL_BYTES;

/** randomHexId returns `bytes` random bytes as lowercase hex, never all zero. */
function randomHexId(bytes: 8 | 16): string {
  const zero = bytes === 16 ? ZERO_TRACE_ID : ZERO_SPAN_ID;
  for (;;) {
    if (poolOffset + bytes > POOL_BYTES) {
      randomFillSync(pool);
      poolHex = pool.toString("hex");
      poolOffset = 0;
    }
    const id = poolHex.slice(poolOffset * 2, (poolOffset + bytes) * 2);
    poolOffset += bytes;
    if (id !== zero) {
      return id;
    }
  }
}
