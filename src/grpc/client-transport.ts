import type * as http2 from "node:http2";
import {
  create,
  type DescMessage,
  type DescMethodStreaming,
  type DescMethodUnary,
  fromBinary,
  fromJsonString,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { encodeGrpcTimeout, GRPC_TIMEOUT_HEADER } from "../grpc-timeout.js";
import { ClientCall, type ClientCallConfig, type ParseFn } from "./client-call.js";
import {
  ClientSession,
  type ClientSessionOptions,
  type ClientSessionState,
} from "./client-session.js";
import { compressionGzip } from "./compression.js";
import { CONTENT_TYPE_JSON, CONTENT_TYPE_PROTO } from "./content-type.js";
import { FRAME_HEADER_BYTES } from "./frame.js";
import { drained } from "./stream-drained.js";

/** GRPC_DEFAULT_MAX_MESSAGE_BYTES is 4 MiB, grpc-js's default max receive message size. */
export const GRPC_DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** GrpcClientTransportOptions configures a gRPC client transport to one endpoint. */
export interface GrpcClientTransportOptions extends ClientSessionOptions {
  /** useBinaryFormat sends protobuf binary (default) rather than JSON (`application/grpc+json`). */
  readonly useBinaryFormat?: boolean | undefined;
  /** sendCompression compresses request messages of at least compressMinBytes; default none. */
  readonly sendCompression?: Compression | undefined;
  /** acceptCompression is offered in grpc-accept-encoding; default none (gzip responses are still read). */
  readonly acceptCompression?: readonly Compression[] | undefined;
  /** compressMinBytes: smaller request messages are sent uncompressed; default 1024, as Connect. */
  readonly compressMinBytes?: number | undefined;
  /** readMaxBytes caps one response message, compressed and inflated; default 4 MiB. */
  readonly readMaxBytes?: number | undefined;
  /** writeMaxBytes caps one request message; default 4 MiB. */
  readonly writeMaxBytes?: number | undefined;
  /** userAgent is sent unless the call sets its own; default `connect-mesh/0.1`. */
  readonly userAgent?: string | undefined;
}

/** GrpcClientTransport is a Connect `Transport` on one HTTP/2 connection. */
export interface GrpcClientTransport extends Transport {
  /** state is the connection's state. */
  state(): ClientSessionState;
  /** close destroys the connection and fails its calls with `reason`. */
  close(reason?: Error): void;
}

const DEFAULT_USER_AGENT = "connect-mesh/0.1 (grpc node:http2)";

// Headers the transport writes itself; the caller's copies are ignored.
// grpc-timeout is not among them: the mesh's attempt step writes it.
const OWN_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "te",
  "grpc-encoding",
  "grpc-accept-encoding",
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
]);

function validateBytes(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= 1 && value <= 0xffffffff)) {
    throw new RangeError(`${name} ${value} must be an integer in [1, 4294967295]`);
  }
}

function validateMs(name: string, value: number | undefined): void {
  if (value !== undefined && !(value > 0)) {
    throw new RangeError(`${name} ${value} must be > 0`);
  }
}

/**
 * requestFrame is encodeFrame into a Buffer from node's pool: a small
 * `new Uint8Array` gets its own backing store (about 1 µs, and GC work),
 * a pooled slice does not; node's stream also takes a Buffer as it is.
 */
function requestFrame(data: Uint8Array, compressed: boolean): Buffer {
  const n = data.byteLength;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(n, 1);
  frame.set(data, FRAME_HEADER_BYTES);
  return frame;
}

interface MethodCodec {
  readonly path: string;
  readonly serialize: (m: unknown) => Uint8Array;
  readonly parse: ParseFn;
}

/**
 * createGrpcClientTransport returns a Connect `Transport` that speaks gRPC
 * directly on one node:http2 session to `address` ("host:port"), connected
 * lazily on the first call. It behaves as connect-node's gRPC transport for
 * `createClient` (codes, messages, details, metadata, deadlines, signals)
 * without its per-call costs; it runs no interceptors of its own.
 */
export function createGrpcClientTransport(
  address: string,
  options: GrpcClientTransportOptions = {},
): GrpcClientTransport {
  validateBytes("readMaxBytes", options.readMaxBytes);
  validateBytes("writeMaxBytes", options.writeMaxBytes);
  validateBytes("compressMinBytes", options.compressMinBytes);
  validateMs("pingIntervalMs", options.pingIntervalMs);
  validateMs("pingTimeoutMs", options.pingTimeoutMs);
  validateMs("idleConnectionTimeoutMs", options.idleConnectionTimeoutMs);
  validateMs("connectTimeoutMs", options.connectTimeoutMs);
  if (typeof address !== "string" || address === "") {
    throw new TypeError(`address ${JSON.stringify(address)} must be a non-empty "host:port"`);
  }
  return new GrpcTransport(address, options);
}

class GrpcTransport implements GrpcClientTransport {
  private readonly session: ClientSession;
  private readonly config: ClientCallConfig;
  private readonly binary: boolean;
  private readonly contentType: string;
  private readonly writeMaxBytes: number;
  private readonly sendCompression: Compression | undefined;
  private readonly compressMinBytes: number;
  private readonly acceptEncoding: string | undefined;
  private readonly userAgent: string;
  private readonly codecs = new WeakMap<object, MethodCodec>();

  constructor(
    readonly address: string,
    options: GrpcClientTransportOptions,
  ) {
    this.session = new ClientSession(address, options);
    this.binary = options.useBinaryFormat ?? true;
    this.contentType = this.binary ? CONTENT_TYPE_PROTO : CONTENT_TYPE_JSON;
    const accept = options.acceptCompression ?? [];
    this.config = {
      address,
      readMaxBytes: options.readMaxBytes ?? GRPC_DEFAULT_MAX_MESSAGE_BYTES,
      // Our gzip is bounded while inflating and maps errors as gRPC does.
      acceptCompression: accept.map((c) => (c.name === "gzip" ? compressionGzip : c)),
    };
    this.writeMaxBytes = options.writeMaxBytes ?? GRPC_DEFAULT_MAX_MESSAGE_BYTES;
    const send = options.sendCompression;
    this.sendCompression = send?.name === "gzip" ? compressionGzip : send;
    this.compressMinBytes = options.compressMinBytes ?? 1024;
    this.acceptEncoding = accept.length === 0 ? undefined : accept.map((c) => c.name).join(",");
    this.userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
  }

  state(): ClientSessionState {
    return this.session.state();
  }

  close(reason?: Error): void {
    this.session.close(reason);
  }

  private codec(method: DescMethodUnary | DescMethodStreaming): MethodCodec {
    let c = this.codecs.get(method);
    if (c === undefined) {
      const input = method.input;
      const output = method.output;
      const parse: ParseFn = this.binary
        ? (data) => {
            try {
              return fromBinary(output, data);
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
        : (data) => {
            try {
              return fromJsonString(output, new TextDecoder().decode(data), {
                ignoreUnknownFields: true,
              });
            } catch (e) {
              throw new ConnectError(
                `parse json: ${e instanceof Error ? e.message : String(e)}`,
                Code.Internal,
                undefined,
                undefined,
                e,
              );
            }
          };
      const serialize = this.binary
        ? (m: unknown) => toBinary(input, m as MessageShape<DescMessage>)
        : (m: unknown) =>
            new TextEncoder().encode(toJsonString(input, m as MessageShape<DescMessage>));
      c = { path: `/${method.parent.typeName}/${method.name}`, serialize, parse };
      this.codecs.set(method, c);
    }
    return c;
  }

  private requestHeaders(
    path: string,
    header: HeadersInit | undefined,
    timeoutMs: number | undefined,
  ): http2.OutgoingHttpHeaders {
    const h: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": this.contentType,
      te: "trailers",
    };
    if (header !== undefined) {
      const headers = header instanceof Headers ? header : new Headers(header);
      headers.forEach((value, key) => {
        if (!OWN_HEADERS.has(key)) h[key] = value;
      });
    }
    if (h["user-agent"] === undefined) h["user-agent"] = this.userAgent;
    if (timeoutMs !== undefined) h[GRPC_TIMEOUT_HEADER] = encodeGrpcTimeout(timeoutMs);
    if (this.sendCompression !== undefined) h["grpc-encoding"] = this.sendCompression.name;
    if (this.acceptEncoding !== undefined) h["grpc-accept-encoding"] = this.acceptEncoding;
    return h;
  }

  // frame serializes, checks writeMaxBytes and compresses one request message.
  private frameSync(codec: MethodCodec, message: unknown): Uint8Array {
    const data = codec.serialize(message);
    if (data.byteLength > this.writeMaxBytes) {
      throw new ConnectError(
        `message size ${data.byteLength} is larger than configured writeMaxBytes ${this.writeMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
    return data;
  }

  private async frame(codec: MethodCodec, message: unknown): Promise<Uint8Array> {
    const data = this.frameSync(codec, message);
    const c = this.sendCompression;
    if (c === undefined || data.byteLength < this.compressMinBytes) {
      return requestFrame(data, false);
    }
    return requestFrame(await c.compress(data), true);
  }

  private open(
    codec: MethodCodec,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    streaming: boolean,
  ): ClientCall {
    if (signal?.aborted === true) {
      throw ConnectError.from(signal.reason ?? "the operation was aborted", Code.Canceled);
    }
    const ms = timeoutMs === undefined || timeoutMs <= 0 ? undefined : timeoutMs;
    const { stream, entry } = this.session.request(this.requestHeaders(codec.path, header, ms));
    const call = new ClientCall(stream, entry, this.config, codec.parse, streaming);
    call.watch(signal);
    if (ms !== undefined) call.deadline(ms);
    return call;
  }

  async unary<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: MessageInitShape<I>,
    _contextValues?: ContextValues,
  ): Promise<UnaryResponse<I, O>> {
    const codec = this.codec(method);
    const message = isMessage(input, method.input) ? input : create(method.input, input);
    let body: Uint8Array;
    if (this.sendCompression === undefined) {
      body = requestFrame(this.frameSync(codec, message), false);
    } else {
      body = await this.frame(codec, message);
    }
    const call = this.open(codec, signal, timeoutMs, header, false);
    call.stream.end(body);
    const output = (await call.unaryResult()) as MessageShape<O>;
    return {
      stream: false,
      service: method.parent,
      method,
      header: call.header as Headers,
      message: output,
      trailer: call.trailer,
    };
  }

  async stream<I extends DescMessage, O extends DescMessage>(
    method: DescMethodStreaming<I, O>,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: HeadersInit | undefined,
    input: AsyncIterable<MessageInitShape<I>>,
    _contextValues?: ContextValues,
  ): Promise<StreamResponse<I, O>> {
    const codec = this.codec(method);
    const call = this.open(codec, signal, timeoutMs, header, true);
    void this.pump(call, codec, method.input, input);
    let responseHeader: Headers;
    try {
      responseHeader = await call.waitHeader();
    } catch (e) {
      call.cancel();
      throw e;
    }
    return {
      stream: true,
      service: method.parent,
      method,
      header: responseHeader,
      trailer: call.trailer,
      message: new ResponseIterable(call) as unknown as AsyncIterable<MessageShape<O>>,
    };
  }

  // pump writes the request messages, waiting for 'drain' when node's
  // stream buffer is full (HTTP/2 flow control pushing back).
  private async pump(
    call: ClientCall,
    codec: MethodCodec,
    desc: DescMessage,
    input: AsyncIterable<unknown>,
  ): Promise<void> {
    const stream = call.stream;
    const it = input[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        const r = await it.next();
        if (!call.isActive) break;
        if (r.done === true) {
          finished = true;
          if (!stream.destroyed) stream.end();
          break;
        }
        const message = isMessage(r.value, desc) ? r.value : create(desc, r.value as never);
        const frame = await this.frame(codec, message);
        if (!call.isActive || stream.destroyed) break;
        if (!stream.write(frame)) {
          await drained(stream);
        }
      }
    } catch (e) {
      finished = true;
      call.fail(ConnectError.from(e, Code.Internal));
    } finally {
      if (!finished) {
        // The call ended while the caller's input was still open: let it clean up.
        void it.return?.()?.catch(() => {});
      }
    }
  }
}

// ResponseIterable is the response stream of one call: an async iterator
// over the call itself, so reading costs no generator or closure.
class ResponseIterable implements AsyncIterable<unknown>, AsyncIterator<unknown> {
  constructor(private readonly call: ClientCall) {}

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    return this.call.next();
  }

  return(): Promise<IteratorResult<unknown>> {
    this.call.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }
}
