import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl, runStreamingCall, runUnaryCall } from "@connectrpc/connect/protocol";
import { currentCallScope } from "../call-scope.js";
import { type Clock, systemClock } from "../clock.js";
import { parseAddress } from "../discovery/address.js";
import { encodeGrpcTimeout, GRPC_TIMEOUT_HEADER } from "../grpc-timeout.js";
import { buildClientChain } from "./client-chain.js";
import {
  createEndpointTransport,
  type EndpointTransport,
  type EndpointTransportOptions,
} from "./endpoint-transport.js";
import { type MeshCall, meshCallKey } from "./mesh-call.js";
import { classifyTransportError } from "./transport-error.js";

/** MeshTransportOptions configures createMeshTransport. */
export interface MeshTransportOptions extends EndpointTransportOptions {
  /** target is where calls go: `host:port` (IPv6 in brackets). */
  readonly target: string;
  /**
   * interceptors are the user's client interceptors; they run once per logical
   * call, outermost (see CLIENT_INTERCEPTOR_ORDER).
   */
  readonly interceptors?: readonly Interceptor[];
  /** defaultTimeoutMs applies to calls that set no `timeoutMs`; default none. */
  readonly defaultTimeoutMs?: number;
  /**
   * inheritDeadline makes calls made inside a mesh server handler inherit the
   * incoming call's remaining deadline and cancellation; default true.
   */
  readonly inheritDeadline?: boolean;
  /** clock drives deadline arithmetic; default the system clock. */
  readonly clock?: Clock;
}

/**
 * MeshTransport is a Connect `Transport` for `createClient(Desc, transport)`
 * that owns its HTTP/2 sessions.
 */
export interface MeshTransport extends Transport {
  /** target is the target string the transport was built with. */
  readonly target: string;
  /**
   * close fails new calls with UNAVAILABLE, cancels calls in flight and closes
   * every HTTP/2 session. Idempotent.
   */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULTS = { inheritDeadline: true } as const;

/**
 * createMeshTransport returns a transport speaking gRPC over HTTP/2 to the
 * target, with one session per endpoint. One deadline covers the whole call;
 * each attempt rewrites `grpc-timeout` to the time then left (Connect computes
 * it once, before interceptors), so servers always see the true remainder.
 */
export function createMeshTransport(options: MeshTransportOptions): MeshTransport {
  const opts = { ...DEFAULTS, ...options };
  const clock = opts.clock ?? systemClock;
  validateTransportOptions(opts);
  const address = formatTargetAddress(opts.target);
  const baseUrl = `${opts.tls === undefined ? "http" : "https"}://${address}`;
  const interceptors = buildClientChain({ user: opts.interceptors ?? [] });
  const closing = new AbortController();

  let endpoint: EndpointTransport | undefined;
  function pick(): EndpointTransport {
    endpoint ??= createEndpointTransport(address, opts);
    return endpoint;
  }

  // attempt is the innermost step: it runs once per attempt, after every
  // interceptor, and sends the request to one endpoint.
  function attempt(req: UnaryRequest | StreamRequest): Promise<UnaryResponse | StreamResponse> {
    const call = req.contextValues.get(meshCallKey);
    if (call?.deadlineAt !== undefined) {
      const remainingMs = call.deadlineAt - clock.now();
      if (remainingMs <= 0) {
        return Promise.reject(
          new ConnectError(
            `deadline exceeded before attempt ${call.attempt} could start`,
            Code.DeadlineExceeded,
          ),
        );
      }
      req.header.set(GRPC_TIMEOUT_HEADER, encodeGrpcTimeout(remainingMs));
    }
    const ep = pick();
    if (call !== undefined) {
      call.endpoint = ep.address;
    }
    // timeoutMs stays undefined below: the deadline is enforced by the outer
    // call's signal and announced by the header we just wrote.
    const sent = req.stream
      ? ep.transport.stream(
          req.method,
          req.signal,
          undefined,
          req.header,
          req.message,
          req.contextValues,
        )
      : ep.transport.unary(
          req.method,
          req.signal,
          undefined,
          req.header,
          req.message,
          req.contextValues,
        );
    return sent.catch((e: unknown) => {
      throw classifyTransportError(e, ep.address);
    });
  }

  // prepare links the caller's signal, the transport's close, and (inside a
  // mesh handler) the incoming call's signal and deadline.
  function prepare(
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    contextValues: ContextValues | undefined,
  ) {
    if (closing.signal.aborted) {
      throw new ConnectError(`transport for ${opts.target} is closed`, Code.Unavailable);
    }
    let effectiveMs =
      timeoutMs === undefined ? opts.defaultTimeoutMs : timeoutMs <= 0 ? undefined : timeoutMs;
    const scope = opts.inheritDeadline ? currentCallScope() : undefined;
    if (scope !== undefined) {
      const parentMs = scope.timeoutMs();
      if (parentMs !== undefined && (effectiveMs === undefined || parentMs < effectiveMs)) {
        effectiveMs = Math.max(0, parentMs);
      }
    }
    const link = linkSignals([signal, closing.signal, scope?.signal]);
    const values = contextValues ?? createContextValues();
    const call: MeshCall = {
      target: opts.target,
      deadlineAt: effectiveMs === undefined ? undefined : clock.now() + effectiveMs,
      attempt: 1,
      endpoint: undefined,
    };
    values.set(meshCallKey, call);
    return { signal: link.signal, cleanup: link.cleanup, timeoutMs: effectiveMs, values };
  }

  const transport: MeshTransport = {
    target: opts.target,
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const p = prepare(signal, timeoutMs, contextValues);
      try {
        return await runUnaryCall<I, O>({
          interceptors,
          signal: p.signal,
          timeoutMs: p.timeoutMs,
          req: {
            stream: false,
            service: method.parent,
            method,
            requestMethod: "POST",
            url: createMethodUrl(baseUrl, method),
            header: new Headers(header),
            contextValues: p.values,
            message: input,
          },
          next: attempt as unknown as (req: UnaryRequest<I, O>) => Promise<UnaryResponse<I, O>>,
        });
      } finally {
        p.cleanup();
      }
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const p = prepare(signal, timeoutMs, contextValues);
      let res: StreamResponse<I, O>;
      try {
        res = await runStreamingCall<I, O>({
          interceptors,
          signal: p.signal,
          timeoutMs: p.timeoutMs,
          req: {
            stream: true,
            service: method.parent,
            method,
            requestMethod: "POST",
            url: createMethodUrl(baseUrl, method),
            header: new Headers(header),
            contextValues: p.values,
            message: input,
          },
          next: attempt as unknown as (req: StreamRequest<I, O>) => Promise<StreamResponse<I, O>>,
        });
      } catch (e) {
        p.cleanup();
        throw e;
      }
      return { ...res, message: finallyIterable(res.message, p.cleanup) };
    },
    close() {
      if (!closing.signal.aborted) {
        closing.abort(new ConnectError(`transport for ${opts.target} was closed`, Code.Canceled));
        endpoint?.close();
        endpoint = undefined;
      }
      return Promise.resolve();
    },
    [Symbol.asyncDispose]() {
      return transport.close();
    },
  };
  return transport;
}

function validateTransportOptions(opts: MeshTransportOptions): void {
  if (typeof opts.target !== "string" || opts.target === "") {
    throw new TypeError(`target ${JSON.stringify(opts.target)} must be a non-empty string`);
  }
  if (opts.defaultTimeoutMs !== undefined && !(opts.defaultTimeoutMs > 0)) {
    throw new RangeError(`defaultTimeoutMs ${opts.defaultTimeoutMs} must be > 0`);
  }
}

function formatTargetAddress(target: string): string {
  try {
    parseAddress(target);
  } catch (e) {
    throw new TypeError(
      `target ${JSON.stringify(target)} is not supported: want host:port (IPv6 in brackets)`,
      { cause: e },
    );
  }
  return target;
}

/** linkSignals aborts one signal when any input aborts; cleanup removes the listeners. */
function linkSignals(signals: readonly (AbortSignal | undefined)[]): {
  signal: AbortSignal;
  cleanup: () => void;
} {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1 && present[0] !== undefined) {
    return { signal: present[0], cleanup: () => {} };
  }
  const controller = new AbortController();
  const onAbort = (event: Event) => {
    controller.abort((event.target as AbortSignal).reason);
    cleanup();
  };
  const cleanup = () => {
    for (const s of present) {
      s.removeEventListener("abort", onAbort);
    }
  };
  for (const s of present) {
    if (s.aborted) {
      controller.abort(s.reason);
      cleanup();
      break;
    }
    s.addEventListener("abort", onAbort);
  }
  return { signal: controller.signal, cleanup };
}

/** finallyIterable calls `fn` once when iteration ends, fails, or is abandoned. */
function finallyIterable<T>(iterable: AsyncIterable<T>, fn: () => void): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = iterable[Symbol.asyncIterator]();
      return {
        async next() {
          try {
            const r = await it.next();
            if (r.done === true) {
              fn();
            }
            return r;
          } catch (e) {
            fn();
            throw e;
          }
        },
        async return(value?: unknown) {
          fn();
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
      };
    },
  };
}
