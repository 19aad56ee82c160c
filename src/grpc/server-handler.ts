import * as http2 from "node:http2";
import {
  type BinaryReadOptions,
  type BinaryWriteOptions,
  create,
  type DescMessage,
  fromBinary,
  isMessage,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { type CallAbort, callAbortKey } from "../call/call-abort.js";
import { encodedRequestKey, encodedResponseKey } from "../call/encoded-response.js";
import { mapIterable } from "../call/map-iterable.js";
import { ResponseHeaders } from "../call/response-headers.js";
import {
  createFrameDecoder,
  encodeFrame,
  type FrameDecoder,
  type Frame as GrpcFrame,
} from "./frame.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import type { GrpcMethodTable } from "./server-routes.js";
import { decideServerDeadline } from "./server-timeout.js";
import { addHeaders, isProtocolHeader, readRequestHeaders } from "./server-wire.js";
import { encodeStatusDetailsBin } from "./status-details.js";
import { drained } from "./stream-drained.js";

/** GrpcServerHandlerOptions configure the lean gRPC handler. @private */
export interface GrpcServerHandlerOptions {
  readonly methods: GrpcMethodTable;
  /** interceptors: the server chain, the same array the Connect fallback path gets. */
  readonly interceptors: readonly Interceptor[];
  /** requestGate runs before any interceptor (serverCallGate); it may throw a ConnectError. */
  readonly requestGate?: ((ctx: HandlerContext) => void) | undefined;
  /** contextValues creates a call's values (the peer, for instance). */
  readonly contextValues: (stream: http2.ServerHttp2Stream) => ContextValues;
  readonly maxTimeoutMs?: number | undefined;
  readonly readMaxBytes: number;
  readonly maxMetadataBytes: number;
  /** acceptCompression: request encodings accepted, in the server's order of preference. */
  readonly acceptCompression: readonly Compression[];
  /** compressResponses: answer in an encoding the client accepts (from acceptCompression). */
  readonly compressResponses: boolean;
  readonly compressMinBytes: number;
  readonly binaryOptions?: Partial<BinaryReadOptions & BinaryWriteOptions> | undefined;
  /** shutdownSignal cancels every call in flight when it aborts. */
  readonly shutdownSignal: AbortSignal;
  /**
   * onStreamClose runs once per stream the handler served, when it closes
   * (after the call's own cleanup): the server's in-flight count, without a
   * second 'close' listener per stream.
   */
  readonly onStreamClose?: (() => void) | undefined;
}

/** GrpcServerHandler serves one gRPC (binary) request stream. @private */
export type GrpcServerHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => void;

type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

interface PreparedMethod {
  readonly spec: MethodImplSpec;
  readonly next: AnyFn;
  readonly url: string;
}

/** Shared is what every call of one handler reads: options and precomputed wire objects. */
interface Shared {
  readonly opts: GrpcServerHandlerOptions;
  readonly acceptHeader: string;
  readonly live: Set<LeanCall>;
  /** okHead is the response HEADERS when no one set a response header and nothing is compressed. */
  readonly okHead: http2.OutgoingHttpHeaders;
}

/**
 * LeanContext is the HandlerContext of one call, built here rather than by
 * Connect's createHandlerContext: a lazy signal (an AbortController only once
 * someone reads `signal`, not a deadline controller linked to a call
 * controller), request headers copied once, and response header objects that
 * know whether anyone wrote to them.
 */
interface LeanContext extends HandlerContext {
  readonly responseHeader: ResponseHeaders;
  readonly responseTrailer: ResponseHeaders;
}

const CONTENT_TYPE = "application/grpc+proto";
const INPUT_HIGH_WATER = 32;
const INPUT_LOW_WATER = 8;

// node:http2 copies the headers it is given (respond, sendTrailers), so the
// common ones are built once and frozen.
const OK_TRAILERS: http2.OutgoingHttpHeaders = Object.freeze({ "grpc-status": "0" });
const NO_TIMEOUT = (): number | undefined => undefined;
const EXPIRED_TIMEOUT = (): number | undefined => 0;

function responseHeaders(): ResponseHeaders {
  const h = new ResponseHeaders();
  // As Connect's gRPC handler: the context starts with the content type.
  Headers.prototype.set.call(h, "content-type", CONTENT_TYPE);
  return h;
}

// One listener function per event for every stream, not closures per call:
// the stream carries its call. 'close', 'end' and 'wantTrailers' fire at most
// once per stream, so `on` does what `once` would without its wrapper; onClose
// and onEnd guard against a second run anyway.
const kCall = Symbol("connect-mesh lean call");
type CallStream = http2.ServerHttp2Stream & { [kCall]?: LeanCall };

function onStreamError(): void {
  // A client reset shows as an 'error'; 'close' does the cleanup.
}
function onStreamClose(this: CallStream): void {
  this[kCall]?.onClose();
}
function onStreamData(this: CallStream, chunk: Buffer): void {
  this[kCall]?.onData(chunk);
}
function onStreamEnd(this: CallStream): void {
  this[kCall]?.onEnd();
}
function onWantTrailers(this: CallStream): void {
  this[kCall]?.sendTrailers();
}

/**
 * createGrpcServerHandler serves gRPC requests directly on node:http2 streams,
 * dispatching to Connect implementations through the same server interceptor
 * chain Connect would run (composed once per method, outermost first, as
 * Connect's applyInterceptors). The wire follows the gRPC spec: headers, then
 * messages, then trailers, or a Trailers-Only response for an error before any
 * message. A successful call aborts nothing and builds no error.
 * @private
 */
export function createGrpcServerHandler(opts: GrpcServerHandlerOptions): GrpcServerHandler {
  const prepared = new Map<string, PreparedMethod>();
  for (const [path, spec] of opts.methods) {
    prepared.set(path, {
      spec,
      next: compose(anyFnFor(spec), opts.interceptors),
      url: path,
    });
  }
  const live = new Set<LeanCall>();
  opts.shutdownSignal.addEventListener(
    "abort",
    () => {
      const reason = ConnectError.from(opts.shutdownSignal.reason, Code.Unavailable);
      for (const c of live) c.abort(reason);
    },
    { once: true },
  );
  const acceptHeader = opts.acceptCompression.map((c) => c.name).join(",");
  const okHead: http2.OutgoingHttpHeaders = { ":status": 200, "content-type": CONTENT_TYPE };
  if (acceptHeader !== "") okHead["grpc-accept-encoding"] = acceptHeader;
  const shared: Shared = { opts, acceptHeader, live, okHead: Object.freeze(okHead) };
  return (stream, headers) => {
    const call = new LeanCall(stream as CallStream, shared);
    call.start(headers, prepared.get(headers[":path"] as string));
  };
}

/** compose applies interceptors around `fn`: the first one is outermost. */
function compose(fn: AnyFn, interceptors: readonly Interceptor[]): AnyFn {
  let next = fn as AnyFn;
  for (let i = interceptors.length - 1; i >= 0; i--) {
    next = (interceptors[i] as Interceptor)(next as never) as unknown as AnyFn;
  }
  return next;
}

function toValue(value: unknown): IteratorResult<unknown> {
  return { done: false, value };
}

function normalize<D extends DescMessage>(schema: D, m: unknown): MessageShape<D> {
  return isMessage(m, schema) ? m : create(schema, m as never);
}

/**
 * normalizeIterable makes each response message a message of `schema` for the
 * interceptors that see them (return() and throw() reach the handler's own
 * iterator: its finally blocks run when the call is cancelled).
 */
function normalizeIterable<D extends DescMessage>(
  schema: D,
  iterable: AsyncIterable<unknown>,
): AsyncIterable<MessageShape<D>> {
  return mapIterable(iterable, (m) => normalize(schema, m));
}

// The call travels in its context values (as its CallAbort), so the
// composed chain (built once per method) can find the call it runs.
function callOf(req: UnaryRequest | StreamRequest): LeanCall {
  const call = req.contextValues.get(callAbortKey);
  if (!(call instanceof LeanCall) || call.ctx === undefined) {
    throw new ConnectError("lean grpc: call context missing from context values", Code.Internal);
  }
  return call;
}

// As Connect's invoke-implementation mergeRequest: the handler sees what the
// interceptors passed down. When they passed the call's own request, or its
// header, signal and values (the common case), that is the call's context
// itself. The first check reads no signal, so it builds none.
function mergeRequest(call: LeanCall, req: UnaryRequest | StreamRequest): HandlerContext {
  const ctx = call.ctx as LeanContext;
  if (req === call.request) return ctx;
  if (
    req.header === ctx.requestHeader &&
    req.signal === ctx.signal &&
    req.contextValues === ctx.values &&
    req.service === ctx.service
  ) {
    return ctx;
  }
  return {
    ...ctx,
    service: req.service,
    requestHeader: req.header,
    signal: req.signal,
    values: req.contextValues,
  };
}

async function single<T>(it: AsyncIterable<T>, kind: string): Promise<T> {
  const iter = it[Symbol.asyncIterator]();
  const first = await iter.next();
  if (first.done === true) {
    throw new ConnectError(
      `protocol error: missing input message for ${kind} method`,
      Code.Unimplemented,
    );
  }
  const second = await iter.next();
  if (second.done !== true) {
    throw new ConnectError(
      `protocol error: received extra input message for ${kind} method`,
      Code.Unimplemented,
    );
  }
  return first.value;
}

function anyFnFor(spec: MethodImplSpec): AnyFn {
  const output = spec.method.output;
  const service = spec.method.parent;
  switch (spec.kind) {
    case "unary":
      // Not async: one promise (the `then`) on top of the handler's own.
      return (req) => {
        let call: LeanCall;
        let out: unknown;
        try {
          call = callOf(req);
          out = spec.impl(req.message as never, mergeRequest(call, req));
        } catch (e) {
          return Promise.reject(e);
        }
        const ctx = call.ctx as LeanContext;
        const respond = (message: unknown): UnaryResponse =>
          ({
            stream: false,
            message: normalize(output, message),
            method: spec.method,
            service,
            header: ctx.responseHeader,
            trailer: ctx.responseTrailer,
          }) as UnaryResponse;
        return out instanceof Promise
          ? out.then(respond)
          : new Promise((resolve) => resolve(respond(out)));
      };
    case "server_streaming":
      return async (req) => {
        const call = callOf(req);
        const ctx = call.ctx as LeanContext;
        const input = await single(req.message as AsyncIterable<unknown>, "server-streaming");
        return {
          stream: true,
          message: normalizeIterable(output, spec.impl(input as never, mergeRequest(call, req))),
          method: spec.method,
          service,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
        } as StreamResponse;
      };
    case "client_streaming":
      return async (req) => {
        const call = callOf(req);
        const ctx = call.ctx as LeanContext;
        const out = await spec.impl(req.message as never, mergeRequest(call, req));
        return {
          stream: true,
          message: (async function* () {
            yield normalize(output, out);
          })(),
          method: spec.method,
          service,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
        } as StreamResponse;
      };
    case "bidi_streaming":
      return async (req) => {
        const call = callOf(req);
        const ctx = call.ctx as LeanContext;
        return {
          stream: true,
          message: normalizeIterable(
            output,
            spec.impl(req.message as never, mergeRequest(call, req)),
          ),
          method: spec.method,
          service,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
        } as StreamResponse;
      };
  }
}

function copyHeaders(from: Headers, to: Headers): void {
  if (from === to) return;
  for (const k of [...to.keys()]) to.delete(k);
  from.forEach((v, k) => {
    to.set(k, v);
  });
}

function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  return new ConnectError("internal error", Code.Internal, undefined, undefined, e);
}

type AbortListener = (reason: unknown) => void;

const kLeanCall = Symbol("connect-mesh lean call");
type WithLeanCall = { [kLeanCall]: LeanCall };

// One accessor for every call's context and request: the same getter on
// objects of the same shape keeps them fast objects. An object literal with
// a getter is a dictionary-mode object (measured here: ~0.4 µs to create,
// and every property read slower); this costs ~0.1 µs.
const LAZY_SIGNAL: PropertyDescriptor = {
  get(this: WithLeanCall): AbortSignal {
    return this[kLeanCall].signal();
  },
  enumerable: true,
  configurable: true,
};

/**
 * withLazySignal gives `target` an own, enumerable `signal` getter that
 * returns the call's signal, building it on first read: a spread
 * (`{ ...req, header }`, as interceptors write) copies the signal itself.
 */
function withLazySignal<T extends object>(target: T, call: LeanCall): T & { signal: AbortSignal } {
  (target as T & WithLeanCall)[kLeanCall] = call;
  return Object.defineProperty(target, "signal", LAZY_SIGNAL) as T & { signal: AbortSignal };
}

/**
 * LeanCall is one gRPC call on one stream: reading, dispatch, writing. It is
 * the call's CallAbort: the deadline interceptor and the aborted-call guard
 * follow its cancellation through plain callbacks, and its AbortController
 * is built only when someone reads the call's signal (a successful call
 * whose handler never looks builds none).
 */
class LeanCall implements CallAbort {
  ctx: LeanContext | undefined;
  aborted = false;
  reason: unknown;
  request: UnaryRequest | StreamRequest | undefined;
  private controller: AbortController | undefined;
  // Abort listeners: one slot (the deadline race), more in an array.
  private listener: AbortListener | undefined;
  private listeners: AbortListener[] | undefined;
  private method: PreparedMethod | undefined;
  private decoder: FrameDecoder | undefined;
  private headSent = false;
  private finished = false;
  private closed = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private responseCompression: Compression | undefined;
  private requestCompression: Compression | undefined;
  // Streaming input: frames waiting for the handler, and a waiting reader.
  private frames: GrpcFrame[] = [];
  private inputDone = false;
  private inputError: ConnectError | undefined;
  private wake: (() => void) | undefined;
  private trailers: http2.OutgoingHttpHeaders | undefined;

  constructor(
    private readonly stream: CallStream,
    private readonly shared: Shared,
  ) {}

  start(headers: http2.IncomingHttpHeaders, method: PreparedMethod | undefined): void {
    const stream = this.stream;
    const opts = this.shared.opts;
    stream[kCall] = this;
    stream.on("error", onStreamError);
    stream.on("close", onStreamClose);
    if (method === undefined) {
      const path = String(headers[":path"]);
      const slash = path.lastIndexOf("/");
      this.fail(
        new ConnectError(
          slash > 0
            ? `unknown method ${path.slice(slash + 1)} for service ${path.slice(1, slash)}`
            : `unknown method ${JSON.stringify(path)}`,
          Code.Unimplemented,
        ),
      );
      return;
    }
    this.method = method;
    const requestHeader = new Headers();
    const meta = readRequestHeaders(headers, requestHeader);
    if (meta > opts.maxMetadataBytes) {
      this.fail(
        new ConnectError(
          `request metadata of ${meta} bytes is larger than the limit of ${opts.maxMetadataBytes} bytes`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      this.requestCompression = opts.acceptCompression.find((c) => c.name === encoding);
      if (this.requestCompression === undefined) {
        this.fail(
          new ConnectError(
            `unknown compression "${String(encoding)}": supported encodings are ${this.shared.acceptHeader}`,
            Code.Unimplemented,
          ),
        );
        return;
      }
    }
    if (opts.compressResponses) {
      const accept = headers["grpc-accept-encoding"];
      if (typeof accept === "string") {
        for (const name of accept.split(",")) {
          const c = opts.acceptCompression.find((x) => x.name === name.trim());
          if (c !== undefined) {
            this.responseCompression = c;
            break;
          }
        }
      }
    }
    const deadline = decideServerDeadline(
      headers["grpc-timeout"] as string | undefined,
      opts.maxTimeoutMs,
    );
    if (deadline.kind === "invalid") {
      this.fail(deadline.error);
      return;
    }
    const spec = method.spec;
    const values = opts.contextValues(stream);
    let timeoutMs = NO_TIMEOUT;
    if (deadline.kind === "deadline") {
      const at = performance.now() + deadline.timeoutMs;
      timeoutMs = () => at - performance.now();
    } else if (deadline.kind === "expired") {
      timeoutMs = EXPIRED_TIMEOUT;
    }
    const ctx = withLazySignal(
      {
        service: spec.method.parent,
        method: spec.method,
        protocolName: "grpc",
        requestMethod: "POST",
        url: method.url,
        timeoutMs,
        requestHeader,
        responseHeader: responseHeaders(),
        responseTrailer: new ResponseHeaders(),
        values,
      },
      this,
    ) as LeanContext;
    this.ctx = ctx;
    values.set(callAbortKey, this);
    this.shared.live.add(this);
    if (deadline.kind === "deadline") {
      // Our own timer, cleared when the call ends.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        const e = new ConnectError("the operation timed out", Code.DeadlineExceeded);
        this.abort(e);
        // Answer now even if the request has not fully arrived; the chain's
        // own outcome (logged by observe) is dropped.
        this.fail(e);
      }, deadline.timeoutMs);
    } else if (deadline.kind === "expired") {
      // The chain still runs (logs, metrics) but the deadline interceptor
      // answers DEADLINE_EXCEEDED before the handler.
      this.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    }
    try {
      opts.requestGate?.(ctx);
    } catch (e) {
      this.fail(toConnectError(e));
      return;
    }
    this.decoder = createFrameDecoder({ readMaxBytes: opts.readMaxBytes });
    stream.on("data", onStreamData);
    stream.on("end", onStreamEnd);
    if (spec.kind === "client_streaming" || spec.kind === "bidi_streaming") {
      this.runStream(this.inputIterable()).catch((e) => this.fail(toConnectError(e)));
    }
  }

  /**
   * signal is the call's AbortSignal, built on first read: already aborted
   * with the call's reason when the call was aborted before anyone read it.
   */
  signal(): AbortSignal {
    let c = this.controller;
    if (c === undefined) {
      c = new AbortController();
      this.controller = c;
      if (this.aborted) c.abort(this.reason);
    }
    return c.signal;
  }

  /** abort aborts the call (once): its listeners, then its signal if anyone has read it. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const first = this.listener;
    const more = this.listeners;
    this.listener = undefined;
    this.listeners = undefined;
    first?.(reason);
    if (more !== undefined) for (const fn of more) fn(reason);
    this.controller?.abort(reason);
  }

  onAbort(fn: AbortListener): void {
    if (this.aborted) return;
    if (this.listener === undefined) this.listener = fn;
    else if (this.listeners === undefined) this.listeners = [fn];
    else this.listeners.push(fn);
  }

  offAbort(fn: AbortListener): void {
    if (this.listener === fn) {
      this.listener = undefined;
      return;
    }
    const i = this.listeners?.indexOf(fn) ?? -1;
    if (i >= 0) this.listeners?.splice(i, 1);
  }

  /** chainRequest is the request handed to the interceptor chain; its signal is the call's, read lazily. */
  private chainRequest<R extends UnaryRequest | StreamRequest>(
    stream: R["stream"],
    message: unknown,
  ): R {
    const method = this.method as PreparedMethod;
    const ctx = this.ctx as LeanContext;
    const req = withLazySignal(
      {
        stream,
        message,
        method: method.spec.method,
        requestMethod: "POST",
        url: method.url,
        header: ctx.requestHeader,
        service: method.spec.method.parent,
        contextValues: ctx.values,
      },
      this,
    ) as R;
    this.request = req;
    return req;
  }

  onData(chunk: Buffer): void {
    if (this.inputDone) return;
    let got: GrpcFrame[];
    try {
      got = (this.decoder as FrameDecoder).push(chunk);
    } catch (e) {
      // A length prefix over readMaxBytes: RESOURCE_EXHAUSTED before the body is buffered.
      this.inputFailed(toConnectError(e));
      return;
    }
    if (got.length === 0) return;
    if (this.frames.length === 0) this.frames = got;
    else for (const f of got) this.frames.push(f);
    if (this.frames.length >= INPUT_HIGH_WATER) this.stream.pause();
    this.wakeReader();
  }

  onEnd(): void {
    if (this.inputDone) return;
    try {
      (this.decoder as FrameDecoder).end();
    } catch (e) {
      this.inputFailed(toConnectError(e));
      return;
    }
    this.inputDone = true;
    this.wakeReader();
    const kind = (this.method as PreparedMethod).spec.kind;
    if (kind === "unary") {
      this.runUnary();
    } else if (kind === "server_streaming") {
      this.runStream(this.inputIterable()).catch((e) => this.fail(toConnectError(e)));
    }
  }

  private wakeReader(): void {
    const w = this.wake;
    if (w !== undefined) {
      this.wake = undefined;
      w();
    }
  }

  /** inputFailed ends the call at once: the rest of the request is never read. */
  private inputFailed(error: ConnectError): void {
    this.inputDone = true;
    this.inputError = error;
    this.frames = [];
    this.wakeReader();
    this.abort(error);
    this.fail(error);
  }

  /** parse decodes one request message; a promise only when it must inflate. */
  private parse(frame: GrpcFrame): unknown {
    if (frame.compressed) {
      if (this.requestCompression === undefined) {
        throw new ConnectError(
          "protocol error: received compressed message without grpc-encoding",
          Code.Internal,
        );
      }
      return this.requestCompression
        .decompress(frame.data, this.shared.opts.readMaxBytes)
        .then((data) => this.fromBinary(data));
    }
    return this.fromBinary(frame.data);
  }

  private fromBinary(data: Uint8Array): unknown {
    const schema = (this.method as PreparedMethod).spec.method.input;
    try {
      return fromBinary(schema, data, this.shared.opts.binaryOptions);
    } catch (e) {
      throw new ConnectError(
        `parse binary: ${e instanceof Error ? e.message : String(e)}`,
        Code.Internal,
        undefined,
        undefined,
        e,
      );
    }
  }

  // inputIterable is the streaming request: a read that finds a message
  // buffered costs one resolved promise, a read that waits one more.
  private inputIterable(): AsyncIterable<unknown> {
    const read = (): IteratorResult<unknown> | Promise<IteratorResult<unknown>> | undefined => {
      const f = this.frames.shift();
      if (f !== undefined) {
        if (this.frames.length < INPUT_LOW_WATER && this.stream.isPaused()) {
          this.stream.resume();
        }
        const value = this.parse(f);
        return value instanceof Promise ? value.then(toValue) : { done: false, value };
      }
      if (this.inputError !== undefined) throw this.inputError;
      if (this.inputDone) return { done: true, value: undefined };
      return undefined;
    };
    const next = (): Promise<IteratorResult<unknown>> => {
      let r: ReturnType<typeof read>;
      try {
        r = read();
      } catch (e) {
        return Promise.reject(e);
      }
      if (r !== undefined) return r instanceof Promise ? r : Promise.resolve(r);
      return new Promise<IteratorResult<unknown>>((resolve, reject) => {
        const retry = () => {
          // Woken by a message, the end, or a failure: read again.
          let again: ReturnType<typeof read>;
          try {
            again = read();
          } catch (e) {
            reject(e);
            return;
          }
          if (again === undefined) this.wake = retry;
          else resolve(again);
        };
        this.wake = retry;
      });
    };
    const iterator: AsyncIterator<unknown> = { next };
    return {
      [Symbol.asyncIterator]: () => iterator,
    };
  }

  /**
   * runUnary serves a unary call once the request has ended. Callbacks, not
   * an async function: each promise (and each await) runs the call scope's
   * async hooks, and a unary call needs one `then` here.
   */
  private runUnary(): void {
    let message: unknown;
    try {
      if (this.frames.length !== 1) {
        throw new ConnectError(
          this.frames.length === 0
            ? "protocol error: missing input message for unary method"
            : "protocol error: received extra input message for unary method",
          Code.Unimplemented,
        );
      }
      const first = this.frames[0] as GrpcFrame;
      this.frames = [];
      message = this.parse(first);
      // The received bytes, for the idempotency interceptor's fingerprint.
      if (!first.compressed && this.shared.opts.binaryOptions === undefined) {
        (this.ctx as LeanContext).values.set(encodedRequestKey, { message, bytes: first.data });
      }
    } catch (e) {
      this.fail(toConnectError(e));
      return;
    }
    if (message instanceof Promise) {
      message.then(
        (m) => this.dispatchUnary(m),
        (e) => this.fail(toConnectError(e)),
      );
    } else {
      this.dispatchUnary(message);
    }
  }

  private dispatchUnary(message: unknown): void {
    let res: Promise<UnaryResponse | StreamResponse>;
    try {
      res = (this.method as PreparedMethod).next(this.chainRequest<UnaryRequest>(false, message));
    } catch (e) {
      this.fail(toConnectError(e));
      return;
    }
    res.then(
      (r) => this.answerUnary(r as UnaryResponse),
      (e) => this.fail(toConnectError(e)),
    );
  }

  private answerUnary(res: UnaryResponse): void {
    if (this.finished) return;
    try {
      const ctx = this.ctx as LeanContext;
      copyHeaders(res.header, ctx.responseHeader);
      copyHeaders(res.trailer, ctx.responseTrailer);
      const output = (this.method as PreparedMethod).spec.method.output;
      // The idempotency interceptor encoded this very message to store it: its
      // bytes are the wire's too (same default write options).
      const encoded = ctx.values.get(encodedResponseKey);
      const bytes =
        encoded !== undefined &&
        encoded.message === res.message &&
        this.shared.opts.binaryOptions === undefined
          ? encoded.bytes
          : toBinary(output, normalize(output, res.message), this.shared.opts.binaryOptions);
      if (this.needsCompression(bytes)) {
        this.compressedFrame(bytes).then(
          (frame) => this.sendUnary(frame),
          (e) => this.fail(toConnectError(e)),
        );
      } else {
        this.sendUnary(encodeFrame(bytes, false));
      }
    } catch (e) {
      this.fail(toConnectError(e));
    }
  }

  private sendUnary(frame: Uint8Array): void {
    if (this.finished) return;
    try {
      this.sendHead();
      this.end(undefined, frame);
    } catch (e) {
      this.fail(toConnectError(e));
    }
  }

  private async runStream(input: AsyncIterable<unknown>): Promise<void> {
    const method = this.method as PreparedMethod;
    const ctx = this.ctx as LeanContext;
    const res = (await method.next(
      this.chainRequest<StreamRequest>(true, input),
    )) as StreamResponse;
    copyHeaders(res.header, ctx.responseHeader);
    const output = method.spec.method.output;
    for await (const m of res.message) {
      if (this.finished) return;
      const bytes = toBinary(output, normalize(output, m), this.shared.opts.binaryOptions);
      const frame = this.needsCompression(bytes)
        ? await this.compressedFrame(bytes)
        : encodeFrame(bytes, false);
      if (this.finished) return;
      this.sendHead();
      if (!this.stream.write(frame)) {
        await drained(this.stream);
      }
    }
    if (this.finished) return;
    copyHeaders(res.trailer, ctx.responseTrailer);
    this.end(undefined);
  }

  private needsCompression(bytes: Uint8Array): boolean {
    return (
      this.responseCompression !== undefined && bytes.length >= this.shared.opts.compressMinBytes
    );
  }

  private async compressedFrame(bytes: Uint8Array): Promise<Uint8Array> {
    return encodeFrame(await (this.responseCompression as Compression).compress(bytes), true);
  }

  /** responseHead builds the response HEADERS; `mutable` when the caller adds to them. */
  private responseHead(mutable: boolean): http2.OutgoingHttpHeaders {
    const ctx = this.ctx;
    if (
      !mutable &&
      ctx !== undefined &&
      !ctx.responseHeader.touched &&
      this.responseCompression === undefined
    ) {
      return this.shared.okHead;
    }
    const h: http2.OutgoingHttpHeaders = { ":status": 200 };
    if (ctx !== undefined) addHeaders(h, ctx.responseHeader);
    // An interceptor may return header objects without it (Connect's would too).
    h["content-type"] ??= CONTENT_TYPE;
    if (this.responseCompression !== undefined) h["grpc-encoding"] = this.responseCompression.name;
    if (this.shared.acceptHeader !== "") h["grpc-accept-encoding"] = this.shared.acceptHeader;
    return h;
  }

  private sendHead(): void {
    if (this.headSent) return;
    this.headSent = true;
    this.stream.respond(this.responseHead(false), { waitForTrailers: true });
    this.stream.on("wantTrailers", onWantTrailers);
  }

  sendTrailers(): void {
    try {
      this.stream.sendTrailers(this.trailers ?? OK_TRAILERS);
    } catch {
      // The stream went away meanwhile: nothing left to tell.
    }
  }

  private statusTrailers(error: ConnectError | undefined): http2.OutgoingHttpHeaders {
    const ctx = this.ctx;
    if (error === undefined && (ctx === undefined || !ctx.responseTrailer.touched)) {
      return OK_TRAILERS;
    }
    const t: http2.OutgoingHttpHeaders = {};
    if (ctx !== undefined) addHeaders(t, ctx.responseTrailer);
    if (error === undefined) {
      t["grpc-status"] = "0";
      return t;
    }
    error.metadata.forEach((v, k) => {
      if (!isProtocolHeader(k)) t[k] = v;
    });
    t["grpc-status"] = String(error.code);
    if (error.rawMessage !== "") t["grpc-message"] = encodeGrpcMessage(error.rawMessage);
    const details = encodeStatusDetailsBin(error);
    if (details !== undefined) t["grpc-status-details-bin"] = details;
    return t;
  }

  private fail(error: ConnectError): void {
    this.end(error);
  }

  /** end answers the call; `last` is a final message to write with the end of the stream. */
  private end(error: ConnectError | undefined, last?: Uint8Array): void {
    if (this.finished) return;
    this.finished = true;
    this.cleanup();
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    try {
      if (!this.headSent) {
        if (error === undefined) {
          this.sendHead();
        } else {
          // Trailers-Only: one HEADERS frame with END_STREAM.
          const h = this.responseHead(true);
          for (const [k, v] of Object.entries(this.statusTrailers(error))) {
            const before = h[k];
            h[k] =
              before === undefined || v === undefined
                ? v
                : [...[before].flat().map(String), ...[v].flat().map(String)];
          }
          this.headSent = true;
          stream.respond(h, { endStream: true });
          this.stopReading();
          return;
        }
      }
      this.trailers = this.statusTrailers(error);
      if (last === undefined) stream.end();
      else stream.end(last);
      if (error !== undefined) this.stopReading();
    } catch {
      stream.destroy();
    }
  }

  // A client still sending (a stream failed early) is told to stop with
  // RST_STREAM(NO_ERROR) after the response, as connect-node does.
  private stopReading(): void {
    const stream = this.stream;
    setImmediate(() => {
      if (!stream.destroyed && stream.state.remoteClose === 0) {
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
    });
  }

  private cleanup(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.shared.live.delete(this);
  }

  onClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.finished) {
      // The client went away (RST_STREAM, connection lost) before the answer.
      this.finished = true;
      this.cleanup();
      this.inputDone = true;
      this.inputError ??= new ConnectError("the client cancelled the call", Code.Canceled);
      this.wakeReader();
      this.abort(this.inputError);
    }
    this.shared.opts.onStreamClose?.();
  }
}
