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
  createContextKey,
  createHandlerContext,
  type HandlerContext,
  type Interceptor,
  type MethodImplSpec,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { createFrameDecoder, encodeFrame, type Frame as GrpcFrame } from "./frame.js";
import { encodeGrpcMessage } from "./grpc-message.js";
import type { GrpcMethodTable } from "./server-routes.js";
import { decideServerDeadline } from "./server-timeout.js";
import { addHeaders, isProtocolHeader, metadataBytes, requestHeaderInit } from "./server-wire.js";
import { encodeStatusDetailsBin } from "./status-details.js";

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
}

/** GrpcServerHandler serves one gRPC (binary) request stream. @private */
export type GrpcServerHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
) => void;

type Ctl = ReturnType<typeof createHandlerContext>;
type AnyFn = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

interface PreparedMethod {
  readonly spec: MethodImplSpec;
  readonly next: AnyFn;
  readonly url: string;
}

// The call's context travels in its context values, so the composed chain
// (built once per method) can find the context of the call it runs.
const callContextKey = createContextKey<Ctl | undefined>(undefined, {
  description: "connect-mesh lean grpc context",
});

const CONTENT_TYPE = "application/grpc+proto";
const INPUT_HIGH_WATER = 32;
const INPUT_LOW_WATER = 8;

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
      for (const c of live) c.ctx?.abort(reason);
    },
    { once: true },
  );
  const acceptHeader = opts.acceptCompression.map((c) => c.name).join(",");
  return (stream, headers) => {
    const call = new LeanCall(stream, opts, acceptHeader, live);
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

function normalize<D extends DescMessage>(schema: D, m: unknown): MessageShape<D> {
  return isMessage(m, schema) ? m : create(schema, m as never);
}

async function* normalizeIterable<D extends DescMessage>(
  schema: D,
  it: AsyncIterable<unknown>,
): AsyncIterable<MessageShape<D>> {
  for await (const m of it) yield normalize(schema, m);
}

function contextOf(req: UnaryRequest | StreamRequest): Ctl {
  const ctx = req.contextValues.get(callContextKey);
  if (ctx === undefined) {
    throw new ConnectError("lean grpc: call context missing from context values", Code.Internal);
  }
  return ctx;
}

// As Connect's invoke-implementation mergeRequest: the handler sees what the
// interceptors passed down.
function mergeRequest(ctx: Ctl, req: UnaryRequest | StreamRequest): HandlerContext {
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
      return async (req) => {
        const ctx = contextOf(req);
        const out = await spec.impl(req.message as never, mergeRequest(ctx, req));
        return {
          stream: false,
          message: normalize(output, out),
          method: spec.method,
          service,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
        } as UnaryResponse;
      };
    case "server_streaming":
      return async (req) => {
        const ctx = contextOf(req);
        const input = await single(req.message as AsyncIterable<unknown>, "server-streaming");
        return {
          stream: true,
          message: normalizeIterable(output, spec.impl(input as never, mergeRequest(ctx, req))),
          method: spec.method,
          service,
          header: ctx.responseHeader,
          trailer: ctx.responseTrailer,
        } as StreamResponse;
      };
    case "client_streaming":
      return async (req) => {
        const ctx = contextOf(req);
        const out = await spec.impl(req.message as never, mergeRequest(ctx, req));
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
        const ctx = contextOf(req);
        return {
          stream: true,
          message: normalizeIterable(
            output,
            spec.impl(req.message as never, mergeRequest(ctx, req)),
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

/** LeanCall is one gRPC call on one stream: reading, dispatch, writing. */
class LeanCall {
  ctx: Ctl | undefined;
  private method: PreparedMethod | undefined;
  private headSent = false;
  private finished = false;
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
    private readonly stream: http2.ServerHttp2Stream,
    private readonly opts: GrpcServerHandlerOptions,
    private readonly acceptHeader: string,
    private readonly live: Set<LeanCall>,
  ) {}

  start(headers: http2.IncomingHttpHeaders, method: PreparedMethod | undefined): void {
    const stream = this.stream;
    // A client reset shows as an 'error' here; 'close' below does the cleanup.
    stream.on("error", () => {});
    stream.once("close", () => this.onClose());
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
    const meta = metadataBytes(headers);
    if (meta > this.opts.maxMetadataBytes) {
      this.fail(
        new ConnectError(
          `request metadata of ${meta} bytes is larger than the limit of ${this.opts.maxMetadataBytes} bytes`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      this.requestCompression = this.opts.acceptCompression.find((c) => c.name === encoding);
      if (this.requestCompression === undefined) {
        this.fail(
          new ConnectError(
            `unknown compression "${String(encoding)}": supported encodings are ${this.acceptHeader}`,
            Code.Unimplemented,
          ),
        );
        return;
      }
    }
    if (this.opts.compressResponses) {
      const accept = headers["grpc-accept-encoding"];
      if (typeof accept === "string") {
        for (const name of accept.split(",")) {
          const c = this.opts.acceptCompression.find((x) => x.name === name.trim());
          if (c !== undefined) {
            this.responseCompression = c;
            break;
          }
        }
      }
    }
    const deadline = decideServerDeadline(
      headers["grpc-timeout"] as string | undefined,
      this.opts.maxTimeoutMs,
    );
    if (deadline.kind === "invalid") {
      this.fail(deadline.error);
      return;
    }
    const spec = method.spec;
    const values = this.opts.contextValues(stream);
    const ctx = createHandlerContext({
      service: spec.method.parent,
      method: spec.method,
      protocolName: "grpc",
      requestMethod: "POST",
      url: method.url,
      requestHeader: requestHeaderInit(headers),
      responseHeader: { "content-type": CONTENT_TYPE },
      contextValues: values,
    });
    this.ctx = ctx;
    values.set(callContextKey, ctx);
    this.live.add(this);
    if (deadline.kind === "deadline") {
      // Our own timer, cleared when the call ends: Connect's would live on
      // until it fires unless the context is aborted, which we avoid on success.
      const at = performance.now() + deadline.timeoutMs;
      (ctx as { timeoutMs: () => number | undefined }).timeoutMs = () => at - performance.now();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        const e = new ConnectError("the operation timed out", Code.DeadlineExceeded);
        ctx.abort(e);
        // Answer now even if the request has not fully arrived; the chain's
        // own outcome (logged by observe) is dropped.
        this.fail(e);
      }, deadline.timeoutMs);
    } else if (deadline.kind === "expired") {
      (ctx as { timeoutMs: () => number | undefined }).timeoutMs = () => 0;
      // The chain still runs (logs, metrics) but the deadline interceptor
      // answers DEADLINE_EXCEEDED before the handler.
      ctx.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    }
    try {
      this.opts.requestGate?.(ctx);
    } catch (e) {
      this.fail(toConnectError(e));
      return;
    }
    const decoder = createFrameDecoder({ readMaxBytes: this.opts.readMaxBytes });
    stream.on("data", (chunk: Buffer) => {
      if (this.inputDone) return;
      let got: GrpcFrame[];
      try {
        got = decoder.push(chunk);
      } catch (e) {
        // A length prefix over readMaxBytes: RESOURCE_EXHAUSTED before the body is buffered.
        this.inputFailed(toConnectError(e));
        return;
      }
      if (got.length === 0) return;
      for (const f of got) this.frames.push(f);
      if (this.frames.length >= INPUT_HIGH_WATER) stream.pause();
      this.wakeReader();
    });
    stream.once("end", () => {
      if (this.inputDone) return;
      try {
        decoder.end();
      } catch (e) {
        this.inputFailed(toConnectError(e));
        return;
      }
      this.inputDone = true;
      this.wakeReader();
      if (spec.kind === "unary" || spec.kind === "server_streaming") {
        this.runSingleInput().catch((e) => this.fail(toConnectError(e)));
      }
    });
    if (spec.kind === "client_streaming" || spec.kind === "bidi_streaming") {
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
    this.ctx?.abort(error);
    this.fail(error);
  }

  private async parse(frame: GrpcFrame): Promise<unknown> {
    let data = frame.data;
    if (frame.compressed) {
      if (this.requestCompression === undefined) {
        throw new ConnectError(
          "protocol error: received compressed message without grpc-encoding",
          Code.Internal,
        );
      }
      data = await this.requestCompression.decompress(data, this.opts.readMaxBytes);
    }
    const schema = (this.method as PreparedMethod).spec.method.input;
    try {
      return fromBinary(schema, data, this.opts.binaryOptions);
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

  private inputIterable(): AsyncIterable<unknown> {
    return {
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<unknown>> => {
          for (;;) {
            const f = this.frames.shift();
            if (f !== undefined) {
              if (this.frames.length < INPUT_LOW_WATER && this.stream.isPaused()) {
                this.stream.resume();
              }
              return { done: false, value: await this.parse(f) };
            }
            if (this.inputError !== undefined) throw this.inputError;
            if (this.inputDone) return { done: true, value: undefined };
            await new Promise<void>((r) => {
              this.wake = r;
            });
          }
        },
      }),
    };
  }

  /** runSingleInput serves unary and server-streaming calls once the request has ended. */
  private async runSingleInput(): Promise<void> {
    const method = this.method as PreparedMethod;
    if (method.spec.kind === "server_streaming") {
      await this.runStream(this.inputIterable());
      return;
    }
    if (this.frames.length !== 1) {
      throw new ConnectError(
        this.frames.length === 0
          ? "protocol error: missing input message for unary method"
          : "protocol error: received extra input message for unary method",
        Code.Unimplemented,
      );
    }
    const ctx = this.ctx as Ctl;
    const message = await this.parse(this.frames[0] as GrpcFrame);
    this.frames = [];
    const res = (await method.next({
      stream: false,
      message,
      method: method.spec.method,
      requestMethod: "POST",
      url: method.url,
      signal: ctx.signal,
      header: ctx.requestHeader,
      service: method.spec.method.parent,
      contextValues: ctx.values,
    } as UnaryRequest)) as UnaryResponse;
    if (this.finished) return;
    copyHeaders(res.header, ctx.responseHeader);
    copyHeaders(res.trailer, ctx.responseTrailer);
    const bytes = toBinary(
      method.spec.method.output,
      normalize(method.spec.method.output, res.message),
      this.opts.binaryOptions,
    );
    const frame = await this.frame(bytes);
    if (this.finished) return;
    this.sendHead();
    this.stream.write(frame);
    this.end(undefined);
  }

  private async runStream(input: AsyncIterable<unknown>): Promise<void> {
    const method = this.method as PreparedMethod;
    const ctx = this.ctx as Ctl;
    const res = (await method.next({
      stream: true,
      message: input,
      method: method.spec.method,
      requestMethod: "POST",
      url: method.url,
      signal: ctx.signal,
      header: ctx.requestHeader,
      service: method.spec.method.parent,
      contextValues: ctx.values,
    } as StreamRequest)) as StreamResponse;
    copyHeaders(res.header, ctx.responseHeader);
    const output = method.spec.method.output;
    for await (const m of res.message) {
      if (this.finished) return;
      const frame = await this.frame(
        toBinary(output, normalize(output, m), this.opts.binaryOptions),
      );
      if (this.finished) return;
      this.sendHead();
      if (!this.stream.write(frame)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            this.stream.off("drain", done);
            this.stream.off("close", done);
            resolve();
          };
          this.stream.on("drain", done);
          this.stream.on("close", done);
        });
      }
    }
    if (this.finished) return;
    copyHeaders(res.trailer, ctx.responseTrailer);
    this.end(undefined);
  }

  private async frame(bytes: Uint8Array): Promise<Uint8Array> {
    const c = this.responseCompression;
    if (c !== undefined && bytes.length >= this.opts.compressMinBytes) {
      return encodeFrame(await c.compress(bytes), true);
    }
    return encodeFrame(bytes, false);
  }

  private responseHead(): http2.OutgoingHttpHeaders {
    const h: http2.OutgoingHttpHeaders = { ":status": 200 };
    if (this.ctx !== undefined) addHeaders(h, this.ctx.responseHeader);
    // An interceptor may return header objects without it (Connect's would too).
    h["content-type"] ??= CONTENT_TYPE;
    if (this.responseCompression !== undefined) h["grpc-encoding"] = this.responseCompression.name;
    if (this.acceptHeader !== "") h["grpc-accept-encoding"] = this.acceptHeader;
    return h;
  }

  private sendHead(): void {
    if (this.headSent) return;
    this.headSent = true;
    this.stream.respond(this.responseHead(), { waitForTrailers: true });
    this.stream.once("wantTrailers", () => {
      try {
        this.stream.sendTrailers(this.trailers ?? { "grpc-status": "0" });
      } catch {
        // The stream went away meanwhile: nothing left to tell.
      }
    });
  }

  private statusTrailers(error: ConnectError | undefined): http2.OutgoingHttpHeaders {
    const t: http2.OutgoingHttpHeaders = {};
    if (this.ctx !== undefined) addHeaders(t, this.ctx.responseTrailer);
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

  private end(error: ConnectError | undefined): void {
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
          const h = this.responseHead();
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
      stream.end();
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
    this.live.delete(this);
  }

  private onClose(): void {
    if (!this.finished) {
      // The client went away (RST_STREAM, connection lost) before the answer.
      this.finished = true;
      this.cleanup();
      this.inputDone = true;
      this.inputError ??= new ConnectError("the client cancelled the call", Code.Canceled);
      this.wakeReader();
      this.ctx?.abort(this.inputError);
    }
  }
}
