import { createHash } from "node:crypto";
import { IDEMPOTENCY_KEY_MAX_LENGTH } from "../idempotency/idempotency-key.js";

/**
 * QueuedCall is one enqueued unary RPC: everything a worker needs to run the
 * method later as if it were called now. It is immutable once enqueued; the
 * delivery attempt is tracked by the queue (QueuedJob.attempt).
 */
export interface QueuedCall {
  /** service is the fully-qualified protobuf service name, `example.orders.v1.OrderService`. */
  readonly service: string;
  /** method is the protobuf method name, `CreateOrder`. */
  readonly method: string;
  /** request is the request message in the protobuf binary format (`toBinary`). */
  readonly request: Uint8Array;
  /**
   * idempotencyKey is sent as the `idempotency-key` header of every attempt,
   * so a redelivered job replays the stored outcome instead of running twice.
   */
  readonly idempotencyKey: string;
  /** traceparent names the enqueuer's span; the worker's call is its child. */
  readonly traceparent: string;
  /** tracestate is the enqueuer's W3C tracestate, when any. */
  readonly tracestate?: string;
  /** headers are further request headers given by the enqueuer (auth, tenant...). */
  readonly headers?: Readonly<Record<string, string>>;
  /** enqueuedAt is when the call was enqueued (epoch ms, wall clock: it crosses processes). */
  readonly enqueuedAt: number;
  /** expiresAt is when the call stops being worth running (epoch ms): later it is dead-lettered as `expired`. */
  readonly expiresAt: number;
  /**
   * replays counts how often the call was replayed from the dead-letter list;
   * every replay runs under its own idempotency key (see effectiveIdempotencyKey).
   */
  readonly replays: number;
}

/** QueuedCallJson is a QueuedCall as JSON (the Redis backend's job data). */
export interface QueuedCallJson {
  readonly v: 1;
  readonly service: string;
  readonly method: string;
  /** request is base64. */
  readonly request: string;
  readonly idempotencyKey: string;
  readonly traceparent: string;
  readonly tracestate?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly enqueuedAt: number;
  readonly expiresAt: number;
  readonly replays: number;
}

/** QueuedCallDecodeError is job data that is not a QueuedCall (another producer, corruption). */
export class QueuedCallDecodeError extends Error {
  override readonly name = "QueuedCallDecodeError";
}

/** encodeQueuedCall renders a call as JSON-safe data. */
export function encodeQueuedCall(call: QueuedCall): QueuedCallJson {
  return {
    v: 1,
    service: call.service,
    method: call.method,
    request: Buffer.from(
      call.request.buffer,
      call.request.byteOffset,
      call.request.byteLength,
    ).toString("base64"),
    idempotencyKey: call.idempotencyKey,
    traceparent: call.traceparent,
    ...(call.tracestate === undefined ? {} : { tracestate: call.tracestate }),
    ...(call.headers === undefined ? {} : { headers: call.headers }),
    enqueuedAt: call.enqueuedAt,
    expiresAt: call.expiresAt,
    replays: call.replays,
  };
}

/** decodeQueuedCall reads what encodeQueuedCall wrote; it throws QueuedCallDecodeError on anything else. */
export function decodeQueuedCall(data: unknown): QueuedCall {
  if (typeof data !== "object" || data === null) {
    throw new QueuedCallDecodeError(`job data ${JSON.stringify(data)} is not an object`);
  }
  const d = data as Partial<Record<keyof QueuedCallJson, unknown>>;
  if (d.v !== 1) {
    throw new QueuedCallDecodeError(`job data version ${JSON.stringify(d.v)} is not 1`);
  }
  for (const f of ["service", "method", "request", "idempotencyKey", "traceparent"] as const) {
    if (typeof d[f] !== "string") {
      throw new QueuedCallDecodeError(`job data field ${f} is not a string`);
    }
  }
  for (const f of ["enqueuedAt", "expiresAt", "replays"] as const) {
    if (typeof d[f] !== "number" || !Number.isFinite(d[f])) {
      throw new QueuedCallDecodeError(`job data field ${f} is not a number`);
    }
  }
  const call: QueuedCall = {
    service: d.service as string,
    method: d.method as string,
    request: new Uint8Array(Buffer.from(d.request as string, "base64")),
    idempotencyKey: d.idempotencyKey as string,
    traceparent: d.traceparent as string,
    enqueuedAt: d.enqueuedAt as number,
    expiresAt: d.expiresAt as number,
    replays: d.replays as number,
  };
  const extra: { tracestate?: string; headers?: Record<string, string> } = {};
  if (typeof d.tracestate === "string") extra.tracestate = d.tracestate;
  if (typeof d.headers === "object" && d.headers !== null) {
    extra.headers = Object.fromEntries(
      Object.entries(d.headers).filter((e): e is [string, string] => typeof e[1] === "string"),
    );
  }
  return { ...call, ...extra };
}

/**
 * effectiveIdempotencyKey is the key a delivery of `call` runs under. Before
 * any replay it is the enqueued key. A replay is an operator's decision to run
 * the call again, so it gets a key of its own: the old key's stored outcome
 * (INVALID_ARGUMENT, say) would otherwise be replayed and the fixed handler
 * never reached. Redeliveries of one replay share its key.
 */
export function effectiveIdempotencyKey(call: QueuedCall): string {
  if (call.replays === 0) {
    return call.idempotencyKey;
  }
  const suffix = `~replay-${call.replays}`;
  const base =
    call.idempotencyKey.length + suffix.length <= IDEMPOTENCY_KEY_MAX_LENGTH
      ? call.idempotencyKey
      : createHash("sha256").update(call.idempotencyKey).digest("hex");
  return `${base}${suffix}`;
}

/** procedureName is `package.Service/Method`, as idempotency and fault rules name methods. */
export function procedureName(call: Pick<QueuedCall, "service" | "method">): string {
  return `${call.service}/${call.method}`;
}
