import { randomUUID } from "node:crypto";
import {
  create,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { checkIdempotencyKey, IDEMPOTENCY_KEY_HEADER } from "../idempotency/idempotency-key.js";
import { traceContextKey } from "../observability/context-keys.js";
import { currentTraceContext } from "../observability/current-call.js";
import { childOf, formatTraceparent, newRootContext } from "../observability/trace-context.js";
import type { Queue } from "./queue.js";
import type { QueuedCall } from "./queued-call.js";

/** QueuedClientOptions configures createQueuedClient. */
export interface QueuedClientOptions {
  /** queue receives the calls (`createMemoryQueue()`, `createRedisQueue()`). */
  readonly queue: Queue;
  /** defaultTtlMs is the expiry of calls made without `timeoutMs`; default 24 h. */
  readonly defaultTtlMs?: number;
  /** now is the wall clock (epoch ms) that expiries are computed from; default Date.now. */
  readonly now?: () => number;
}

/** QUEUED_CLIENT_DEFAULTS are the defaults documented on QueuedClientOptions. */
export const QUEUED_CLIENT_DEFAULTS = Object.freeze({
  // A day covers a worker fleet being down over a deploy or an outage; older
  // background work is usually better dropped (dead-lettered) than done late.
  defaultTtlMs: 24 * 60 * 60 * 1_000,
});

/** QueuedCallOptions are the options of one queued call. */
export interface QueuedCallOptions {
  /**
   * timeoutMs is the call's time to live: past it the job is dead-lettered as
   * `expired` instead of run, and a running attempt's deadline never extends
   * beyond it. Default the client's `defaultTtlMs`; <= 0: never expires.
   */
  readonly timeoutMs?: number;
  /**
   * headers are sent with every attempt. `idempotency-key` sets the job's key
   * (default a random UUIDv4); protocol headers (`content-type`, `grpc-*`,
   * `connect-*`, `te`, `traceparent`, `tracestate`) are dropped. Stored with
   * the job: do not put secrets here that should not rest in the queue.
   */
  readonly headers?: HeadersInit;
  /** signal, when already aborted, rejects the call with CANCELED before anything is enqueued. */
  readonly signal?: AbortSignal;
  /**
   * contextValues may name the trace parent explicitly (`traceContextKey`);
   * default the span of the incoming call being handled, else a new trace.
   */
  readonly contextValues?: ContextValues;
}

/** QueuedCallReceipt is what a queued call resolves with once the queue has accepted it. */
export interface QueuedCallReceipt {
  readonly jobId: string;
  /** idempotencyKey is the key the job runs under (given, or generated). */
  readonly idempotencyKey: string;
  /** traceparent names the enqueue span; the worker's call continues this trace. */
  readonly traceparent: string;
  /** expiresAt is when the job expires (epoch ms). */
  readonly expiresAt: number;
}

/**
 * QueuedClient has one method per unary method of the service, enqueuing the
 * call instead of making it. Streaming methods are left out of the type (a
 * stream cannot wait in a queue); called anyway, they throw a TypeError.
 */
export type QueuedClient<Desc extends DescService> = {
  [P in keyof Desc["method"] as Desc["method"][P] extends DescMethodUnary
    ? P
    : never]: Desc["method"][P] extends DescMethodUnary<infer I>
    ? (request: MessageInitShape<I>, options?: QueuedCallOptions) => Promise<QueuedCallReceipt>
    : never;
};

// Headers the worker sets itself, or that describe a transport this call never had.
const DROPPED_HEADER =
  /^(content-type|content-length|content-encoding|accept-encoding|te|traceparent|tracestate|grpc-.*|connect-.*)$/;

/**
 * createQueuedClient returns a client whose unary methods enqueue the call on
 * `queue` and resolve with a receipt (`{ jobId, ... }`) once the queue has
 * durably accepted it; a worker (`createQueueWorker`) runs it later through
 * the same server interceptors as a direct call.
 *
 * Each call stores the request bytes, an idempotency key (the caller's
 * `idempotency-key` header, or a random UUIDv4), a traceparent (a child of
 * the current span, or a new trace), and an expiry (`timeoutMs`, or
 * `defaultTtlMs`). A queue that does not accept the call rejects it with
 * UNAVAILABLE; it may still have stored it, and enqueuing again with the
 * same idempotency key is then safe (the worker runs the key once).
 */
export function createQueuedClient<Desc extends DescService>(
  service: Desc,
  options: QueuedClientOptions,
): QueuedClient<Desc> {
  const queue = options.queue;
  if (typeof queue?.enqueue !== "function") {
    throw new TypeError("createQueuedClient: queue must be a Queue");
  }
  const defaultTtlMs = options.defaultTtlMs ?? QUEUED_CLIENT_DEFAULTS.defaultTtlMs;
  if (!(defaultTtlMs > 0) || !Number.isFinite(defaultTtlMs)) {
    throw new RangeError(`defaultTtlMs ${defaultTtlMs} must be a finite number > 0`);
  }
  const now = options.now ?? Date.now;
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind === "unary") {
      const unary = method as DescMethodUnary;
      client[method.localName] = (
        request: MessageInitShape<DescMethodUnary["input"]>,
        callOptions?: QueuedCallOptions,
      ) => enqueueCall(unary, request, callOptions ?? {});
    } else {
      client[method.localName] = () => {
        throw new TypeError(
          `${method.parent.typeName}/${method.name} is ${method.methodKind}: only unary methods can be queued`,
        );
      };
    }
  }
  return client as QueuedClient<Desc>;

  async function enqueueCall(
    method: DescMethodUnary,
    request: MessageInitShape<DescMethodUnary["input"]>,
    callOptions: QueuedCallOptions,
  ): Promise<QueuedCallReceipt> {
    if (callOptions.signal?.aborted) {
      throw ConnectError.from(callOptions.signal.reason ?? "call was cancelled", Code.Canceled);
    }
    const header = new Headers(callOptions.headers);
    const idempotencyKey = header.get(IDEMPOTENCY_KEY_HEADER) ?? randomUUID();
    const check = checkIdempotencyKey(idempotencyKey);
    if (!check.ok) {
      throw new ConnectError(check.problem, Code.InvalidArgument);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of header) {
      if (name !== IDEMPOTENCY_KEY_HEADER && !DROPPED_HEADER.test(name)) headers[name] = value;
    }
    const parent = callOptions.contextValues?.get(traceContextKey) ?? currentTraceContext();
    const span = parent === undefined ? newRootContext() : childOf(parent);
    const enqueuedAt = now();
    const ttlMs = callOptions.timeoutMs ?? defaultTtlMs;
    const message = create(method.input, request);
    const call: QueuedCall = {
      service: method.parent.typeName,
      method: method.name,
      request: toBinary(method.input, message),
      idempotencyKey,
      traceparent: formatTraceparent(span),
      ...(span.tracestate === undefined ? {} : { tracestate: span.tracestate }),
      ...(Object.keys(headers).length === 0 ? {} : { headers }),
      enqueuedAt,
      expiresAt: ttlMs > 0 ? enqueuedAt + ttlMs : Number.MAX_SAFE_INTEGER,
      replays: 0,
    };
    let jobId: string;
    try {
      jobId = await queue.enqueue(call);
    } catch (e) {
      throw new ConnectError(
        `queue ${JSON.stringify(queue.name)} did not accept ${call.service}/${call.method}: ${
          e instanceof Error ? e.message : String(e)
        }`,
        Code.Unavailable,
        undefined,
        undefined,
        e,
      );
    }
    return { jobId, idempotencyKey, traceparent: call.traceparent, expiresAt: call.expiresAt };
  }
}
