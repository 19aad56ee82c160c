import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  type UniversalHandler,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcTimeout, GRPC_TIMEOUT_HEADER } from "../grpc-timeout.js";
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_REPLAYED_HEADER,
} from "../idempotency/idempotency-key.js";
import { TRACEPARENT_HEADER, TRACESTATE_HEADER } from "../observability/trace-context.js";
import type { QueuedCall } from "./queued-call.js";

/** InvokeOptions are the per-delivery parts of a synthetic request. */
export interface InvokeOptions {
  readonly idempotencyKey: string;
  /** timeoutMs becomes the request's `grpc-timeout`. */
  readonly timeoutMs: number;
  /** signal cancels the call (the worker closing past its grace). */
  readonly signal: AbortSignal;
  /** contextValues become the handler context's values. */
  readonly contextValues: ContextValues;
}

/** InvokeResult is how a synthetic call ended. */
export interface InvokeResult {
  /** error is the call's error; undefined when it succeeded. */
  readonly error: ConnectError | undefined;
  /** replayed says whether the idempotency interceptor replayed a stored outcome. */
  readonly replayed: boolean;
}

const NO_HEADERS = new Headers();

/**
 * invokeQueuedCall runs a queued call through a Connect UniversalHandler as a
 * gRPC request, exactly as the HTTP/2 server would hand it over: the same
 * protocol code parses the enveloped request and `grpc-timeout`, and the
 * router's interceptors (the mesh server chain) and the handler run as for a
 * direct call. The outcome is read from the gRPC status (trailers-only
 * responses included).
 * @private
 */
export async function invokeQueuedCall(
  handler: UniversalHandler,
  call: QueuedCall,
  options: InvokeOptions,
): Promise<InvokeResult> {
  const header = new Headers(call.headers);
  header.set("content-type", "application/grpc+proto");
  header.set("te", "trailers");
  header.set(GRPC_TIMEOUT_HEADER, encodeGrpcTimeout(Math.max(1, options.timeoutMs)));
  header.set(IDEMPOTENCY_KEY_HEADER, options.idempotencyKey);
  header.set(TRACEPARENT_HEADER, call.traceparent);
  if (call.tracestate !== undefined) header.set(TRACESTATE_HEADER, call.tracestate);
  let res: UniversalServerResponse;
  try {
    res = await handler({
      httpVersion: "2.0",
      method: "POST",
      url: `http://queue.invalid${handler.requestPath}`,
      header,
      body: createAsyncIterable([encodeEnvelope(0, call.request)]),
      signal: options.signal,
      contextValues: options.contextValues,
    });
    // The implementation runs while the body is read; trailers are final after it.
    if (res.body !== undefined) {
      for await (const _ of res.body) {
        // The response message is not kept: nobody waits for it.
      }
    }
  } catch (e) {
    return { error: ConnectError.from(e, Code.Internal), replayed: false };
  }
  const resHeader = res.header ?? NO_HEADERS;
  const trailer = res.trailer ?? NO_HEADERS;
  const error = findTrailerError(resHeader) ?? findTrailerError(trailer);
  const replayed =
    resHeader.get(IDEMPOTENCY_REPLAYED_HEADER) === "true" ||
    trailer.get(IDEMPOTENCY_REPLAYED_HEADER) === "true";
  if (error !== undefined) {
    return { error, replayed };
  }
  if (res.status !== 200 || (trailer.get("grpc-status") ?? resHeader.get("grpc-status")) !== "0") {
    return {
      error: new ConnectError(
        `handler answered HTTP ${res.status} without a gRPC status`,
        Code.Internal,
      ),
      replayed,
    };
  }
  return { error: undefined, replayed };
}
