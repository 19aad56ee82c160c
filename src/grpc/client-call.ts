import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { unwatchAbort, watchAbort } from "../call/abort-fanout.js";
import { ConnectionLostError, isTlsFailureCode } from "../call/transport-error.js";
import { MAX_TIMER_DELAY_MS } from "../clock.js";
import type { SessionEntry } from "./client-session.js";
import { compressionGzip, decompressError } from "./compression.js";
import { parseGrpcContentType } from "./content-type.js";
import { createFrameDecoder, FRAME_HEADER_BYTES, type Frame, type FrameDecoder } from "./frame.js";
import { decodeGrpcMessage } from "./grpc-message.js";
import { codeFromHttpStatus, GRPC_STATUS_OK, isValidCode } from "./grpc-status.js";
import { headersFromNode } from "./metadata.js";
import { decodeStatusDetailsBin, GRPC_STATUS_DETAILS_HEADER } from "./status-details.js";

const {
  NGHTTP2_CANCEL,
  NGHTTP2_NO_ERROR,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  NGHTTP2_INADEQUATE_SECURITY,
  NGHTTP2_HTTP_1_1_REQUIRED,
  NGHTTP2_STREAM_CLOSED,
} = http2.constants;

const H2_CODE_NAMES = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

/**
 * rstCodeError maps an RST_STREAM code to a gRPC status per gRPC's
 * PROTOCOL-HTTP2.md "Errors" (the same table as connect-node), with the
 * message connect-node uses so that classifyTransportError reads it alike.
 */
export function rstCodeError(rstCode: number, cause?: unknown): ConnectError | undefined {
  let code: Code;
  switch (rstCode) {
    case NGHTTP2_NO_ERROR:
    case NGHTTP2_STREAM_CLOSED:
      return undefined;
    case NGHTTP2_REFUSED_STREAM:
      code = Code.Unavailable;
      break;
    case NGHTTP2_CANCEL:
      code = Code.Canceled;
      break;
    case NGHTTP2_ENHANCE_YOUR_CALM:
      code = Code.ResourceExhausted;
      break;
    case NGHTTP2_INADEQUATE_SECURITY:
    case NGHTTP2_HTTP_1_1_REQUIRED:
      code = Code.PermissionDenied;
      break;
    default:
      code = Code.Internal;
  }
  const name = H2_CODE_NAMES[rstCode] ?? "UNKNOWN";
  return new ConnectError(
    `http/2 stream closed with error code ${name} (0x${rstCode.toString(16)})`,
    code,
    undefined,
    undefined,
    cause,
  );
}

/** ClientCallConfig is what a call needs from its transport. */
export interface ClientCallConfig {
  readonly address: string;
  readonly readMaxBytes: number;
  readonly acceptCompression: readonly Compression[];
}

/** ParseFn turns one response message's bytes into a message. */
export type ParseFn = (data: Uint8Array) => unknown;

// A streaming response is paused above this many buffered messages, so a
// slow consumer pushes back on the server through HTTP/2 flow control.
const STREAM_HIGH_WATER_FRAMES = 32;

// How long a call that missed its deadline leaves the stream open before
// resetting it with CANCEL: the server's timer for the same deadline fires
// within a few ms (grpc-timeout is rounded down), and a server that sees its
// deadline pass reports DEADLINE_EXCEEDED where an earlier CANCEL reads
// CANCELED. Short enough that the stream's slot is soon free.
const DEADLINE_RESET_GRACE_MS = 20;

const kCall = Symbol("grpcClientCall");
type CallStream = http2.ClientHttp2Stream & { [kCall]?: ClientCall };

// Stream listeners are shared functions, not per-call closures: the call
// hangs off the stream.
function onResponse(
  this: CallStream,
  headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
) {
  this[kCall]?.handleResponse(headers);
}
function onData(this: CallStream, chunk: Buffer) {
  this[kCall]?.handleData(chunk);
}
function onTrailers(this: CallStream, trailers: http2.IncomingHttpHeaders) {
  this[kCall]?.handleTrailers(trailers);
}
function onEnd(this: CallStream) {
  this[kCall]?.handleEnd();
}
function onError(this: CallStream, err: Error) {
  this[kCall]?.handleError(err);
}
function onClose(this: CallStream) {
  this[kCall]?.handleClose();
}

interface Waiter {
  resolve(): void;
  reject(e: unknown): void;
}

interface UnaryWaiter {
  resolve(value: unknown): void;
  reject(e: unknown): void;
}

/**
 * ClientCall reads one gRPC response from a node:http2 client stream:
 * headers, length-prefixed messages (bounded by readMaxBytes), trailers or a
 * Trailers-Only response, and maps every way a stream can end to a
 * ConnectError with the code gRPC prescribes.
 */
export class ClientCall {
  /** header is the response headers, once they arrived. */
  header: Headers | undefined;
  /** trailer fills when the trailers arrive. */
  readonly trailer = new Headers();
  // Made on the first chunk that is not exactly one whole message (most
  // unary responses are, and need none).
  private decoder: FrameDecoder | undefined;
  private readonly frames: Frame[] = [];
  private compression: Compression | undefined;
  /** failure ends the call with this error, whatever arrives later. */
  private failure: ConnectError | undefined;
  private streamError: Error | undefined;
  private trailersOnly = false;
  private gotTrailers = false;
  /** ended: all response data was read (or the stream closed). */
  private ended = false;
  private closed = false;
  private paused = false;
  private waiter: Waiter | undefined;
  // A unary call is woken once, when it is done, not on every event.
  private unaryWaiter: UnaryWaiter | undefined;
  /** statusOk: the trailers said grpc-status 0 (no need to parse them). */
  private statusOk = false;
  private signal: AbortSignal | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly stream: http2.ClientHttp2Stream,
    private readonly entry: SessionEntry,
    private readonly config: ClientCallConfig,
    private readonly parse: ParseFn,
    private readonly streaming: boolean,
  ) {
    const s = stream as CallStream;
    s[kCall] = this;
    s.on("response", onResponse);
    s.on("data", onData);
    s.on("trailers", onTrailers);
    s.on("end", onEnd);
    s.on("error", onError);
    s.on("close", onClose);
  }

  /** watch ends the call with the signal's reason when it aborts. */
  watch(signal: AbortSignal | undefined): void {
    if (signal === undefined) return;
    if (signal.aborted) {
      this.handleEvent();
      return;
    }
    this.signal = signal;
    watchAbort(signal, this);
  }

  /** deadline ends the call with DEADLINE_EXCEEDED after `timeoutMs`. */
  deadline(timeoutMs: number): void {
    if (timeoutMs > MAX_TIMER_DELAY_MS) return;
    this.timer = setTimeout(() => {
      this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded), NGHTTP2_CANCEL);
    }, timeoutMs);
  }

  /** handleEvent is the abort listener (an object, so no closure per call). */
  handleEvent(): void {
    const signal = this.signal;
    const reason = signal?.reason;
    this.fail(
      reason === undefined
        ? new ConnectError("the operation was aborted", Code.Canceled)
        : ConnectError.from(reason, Code.Canceled),
      NGHTTP2_CANCEL,
    );
  }

  /** fail ends the call locally with `error`, resetting the stream with `rstCode`. */
  fail(error: ConnectError, rstCode: number = NGHTTP2_CANCEL): void {
    if (this.failure !== undefined || this.isSettled()) return;
    this.failure = error;
    this.frames.length = 0;
    if (error.code === Code.DeadlineExceeded) {
      // The server holds the same deadline (grpc-timeout): let it see its own
      // deadline pass rather than our CANCEL racing it, so both ends report
      // DEADLINE_EXCEEDED. The call itself fails now.
      const t = setTimeout(() => this.reset(rstCode), DEADLINE_RESET_GRACE_MS);
      t.unref();
    } else {
      this.reset(rstCode);
    }
    this.wake();
  }

  private reset(rstCode: number): void {
    if (!this.stream.closed && !this.stream.destroyed) {
      this.stream.close(rstCode);
    }
  }

  private isSettled(): boolean {
    return this.closed || (this.ended && this.hasStatus());
  }

  private hasStatus(): boolean {
    return this.trailersOnly || this.gotTrailers;
  }

  handleResponse(headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader): void {
    const header = headersFromNode(headers);
    this.header = header;
    const status = headers[":status"];
    if (status !== 200) {
      this.fail(
        new ConnectError(`HTTP ${String(status)}`, codeFromHttpStatus(status ?? 0), header),
      );
      return;
    }
    const contentType = headers["content-type"];
    if (parseGrpcContentType(contentType) === undefined) {
      this.fail(new ConnectError(`unsupported content type ${String(contentType)}`, Code.Unknown));
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      const found =
        encoding === "gzip"
          ? compressionGzip
          : this.config.acceptCompression.find((c) => c.name === encoding);
      if (found === undefined) {
        this.fail(
          new ConnectError(`unsupported response encoding "${encoding}"`, Code.Internal, header),
        );
        return;
      }
      this.compression = found;
    }
    if (headers["grpc-status"] !== undefined) {
      this.trailersOnly = true;
    }
    this.wake();
  }

  handleData(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    let frames: Frame[];
    try {
      frames = this.decoder === undefined ? this.firstFrames(chunk) : this.decoder.push(chunk);
    } catch (e) {
      this.fail(ConnectError.from(e, Code.Internal));
      return;
    }
    if (frames.length === 0) return;
    for (const f of frames) this.frames.push(f);
    if (!this.streaming && this.frames.length > 1) {
      this.fail(
        new ConnectError(
          "protocol error: received extra output message for unary method",
          Code.Unimplemented,
        ),
      );
      return;
    }
    if (this.streaming && this.frames.length >= STREAM_HIGH_WATER_FRAMES && !this.paused) {
      this.paused = true;
      this.stream.pause();
    }
    this.wake();
  }

  // firstFrames reads a chunk while nothing is buffered: a chunk that is one
  // whole message within readMaxBytes is a view of it, anything else goes
  // through a frame decoder from now on.
  private firstFrames(chunk: Buffer): Frame[] {
    const n = chunk.byteLength;
    if (n >= FRAME_HEADER_BYTES) {
      const length = chunk.readUInt32BE(1);
      if (length === n - FRAME_HEADER_BYTES && length <= this.config.readMaxBytes) {
        const flags = chunk[0] as number;
        if ((flags & ~1) === 0) {
          return [{ compressed: flags === 1, data: chunk.subarray(FRAME_HEADER_BYTES) }];
        }
      }
    }
    this.decoder = createFrameDecoder({ readMaxBytes: this.config.readMaxBytes });
    return this.decoder.push(chunk);
  }

  handleTrailers(trailers: http2.IncomingHttpHeaders): void {
    this.gotTrailers = true;
    this.statusOk = trailers["grpc-status"] === GRPC_STATUS_OK;
    for (const key in trailers) {
      const v = trailers[key];
      if (v === undefined || key.charCodeAt(0) === 0x3a) continue;
      this.trailer.set(key, Array.isArray(v) ? v.join(", ") : String(v));
    }
  }

  handleEnd(): void {
    this.ended = true;
    if (this.failure === undefined) {
      try {
        this.decoder?.end();
      } catch (e) {
        this.failure = ConnectError.from(e, Code.Internal);
      }
    }
    if (this.hasStatus() || this.failure !== undefined) {
      this.finish();
    }
  }

  handleError(err: Error): void {
    this.streamError ??= err;
  }

  handleClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.entry.release();
    if (this.failure === undefined && !this.hasStatus()) {
      this.failure = this.closeError();
    }
    this.finish();
  }

  private finish(): void {
    this.cleanup();
    if (!this.stream.closed && !this.stream.destroyed && !this.stream.writableFinished) {
      // The status arrived while we were still sending (a server that
      // answered early): the call is over, stop the request side.
      this.stream.close(NGHTTP2_NO_ERROR);
    }
    this.wake();
  }

  private cleanup(): void {
    if (this.signal !== undefined) {
      unwatchAbort(this.signal, this);
      this.signal = undefined;
    }
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private wake(): void {
    const u = this.unaryWaiter;
    if (u !== undefined && this.isDone()) {
      this.unaryWaiter = undefined;
      this.settleUnary(u);
    }
    const w = this.waiter;
    if (w !== undefined) {
      this.waiter = undefined;
      w.resolve();
    }
  }

  private wait(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  // closeError explains a stream that closed without a gRPC status.
  private closeError(): ConnectError {
    const e = this.streamError;
    const address = this.config.address;
    const rstCode = this.stream.rstCode ?? NGHTTP2_NO_ERROR;
    const session = this.entry.session;
    // The server refused the connection (its certificate check): say why.
    const refused = this.entry.refused(e);
    if (refused !== undefined) return refused;
    if (e !== undefined) {
      const code = (e as { code?: unknown }).code;
      const message = e.message;
      if (code === "ERR_HTTP2_STREAM_ERROR" && message.includes("NGHTTP2_REFUSED_STREAM")) {
        // The server refused the stream before processing it: never sent.
        return new ConnectError(
          `${address} refused the stream (NGHTTP2_REFUSED_STREAM)`,
          Code.Unavailable,
          undefined,
          undefined,
          e,
        );
      }
      if (e instanceof ConnectError && e.code !== Code.Unavailable) {
        // The reason the transport was closed with.
        return e;
      }
      if (code === "ERR_HTTP2_GOAWAY_SESSION" || !this.entry.connected) {
        // Never reached the server: the connection failed or went away first.
        // A refused certificate names its reason code (CERT_HAS_EXPIRED...).
        // node wraps it: "The pending stream has been canceled (caused by: ...)".
        const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
        let text = message;
        let why = "";
        if (typeof code === "string" && isTlsFailureCode(code)) {
          why = ` (${code})`;
        } else if (typeof cause?.code === "string" && isTlsFailureCode(cause.code)) {
          text = String(cause.message);
          why = ` (${cause.code})`;
        }
        return new ConnectError(
          `connection to ${address} failed: ${text}${why}`,
          Code.Unavailable,
          undefined,
          undefined,
          e,
        );
      }
      if (code === "ERR_HTTP2_STREAM_ERROR") {
        const byCode = rstCodeError(rstCode, e);
        if (byCode !== undefined) return byCode;
      }
      return this.lost(`connection to ${address} lost: ${message}`, e);
    }
    if (session.destroyed || session.closed) {
      // node resets the streams of a closed session with CANCEL itself: the
      // peer did not cancel, the connection went away.
      return this.lost(
        `connection to ${address} closed before the call completed`,
        this.entry.error,
      );
    }
    const byCode = rstCodeError(rstCode);
    if (byCode !== undefined) return byCode;
    if (this.header === undefined) {
      return new ConnectError(
        "http/2 stream closed with error code NO_ERROR (0x0) before the response was received",
        Code.Internal,
      );
    }
    return new ConnectError("protocol error: missing status", Code.Internal, this.header);
  }

  // lost is UNAVAILABLE for a connection that broke mid-call, with the cause
  // classifyTransportError would give it (the outlier detector counts it).
  private lost(message: string, cause: unknown): ConnectError {
    return new ConnectError(
      message,
      Code.Unavailable,
      this.header,
      undefined,
      new ConnectionLostError(message, { cause }),
    );
  }

  /** waitHeader resolves once the response headers arrived (or the call failed first). */
  async waitHeader(): Promise<Headers> {
    while (this.header === undefined && this.failure === undefined && !this.closed) {
      await this.wait();
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.header === undefined) throw this.closeError();
    if (this.trailersOnly) {
      const err = statusError(this.header, undefined);
      if (err !== undefined) throw err;
    }
    return this.header;
  }

  /**
   * unaryResult waits for the end of a unary response and returns its one
   * message, or throws the call's error as Connect's gRPC transport does.
   * It is called once per call.
   */
  unaryResult(): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const w: UnaryWaiter = { resolve, reject };
      if (this.isDone()) {
        this.settleUnary(w);
      } else {
        this.unaryWaiter = w;
      }
    });
  }

  private settleUnary(w: UnaryWaiter): void {
    let frame: Frame;
    try {
      frame = this.unaryFrame();
    } catch (e) {
      w.reject(e);
      return;
    }
    if (frame.compressed) {
      this.decode(frame).then(w.resolve, w.reject);
      return;
    }
    try {
      w.resolve(this.parse(frame.data));
    } catch (e) {
      w.reject(e);
    }
  }

  // unaryFrame is the one response message of a finished unary call, or
  // throws the call's error.
  private unaryFrame(): Frame {
    if (this.failure !== undefined) throw this.failure;
    const header = this.header as Headers;
    if (this.trailersOnly) {
      const err = statusError(header, undefined);
      if (err !== undefined) throw err;
      if (this.frames.length > 0) {
        throw new ConnectError(
          "protocol error: received output message for unary method with error status",
          Code.Unknown,
        );
      }
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        Code.Unknown,
      );
    }
    if (!this.statusOk) {
      const err = statusError(this.trailer, header);
      if (err !== undefined) throw err;
    }
    const frame = this.frames[0];
    if (frame === undefined) {
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        Code.Unimplemented,
      );
    }
    return frame;
  }

  private isDone(): boolean {
    return this.failure !== undefined || this.closed || (this.ended && this.hasStatus());
  }

  private async decode(frame: Frame): Promise<unknown> {
    let data = frame.data;
    if (frame.compressed) {
      const c = this.compression;
      if (c === undefined) {
        throw new ConnectError(
          "protocol error: received compressed output without grpc-encoding",
          Code.Internal,
        );
      }
      try {
        data = await c.decompress(data, this.config.readMaxBytes);
      } catch (e) {
        throw decompressError(e, this.config.readMaxBytes);
      }
    }
    return this.parse(data);
  }

  /** next reads the next streamed message; done once the call ended with OK. */
  async next(): Promise<IteratorResult<unknown, undefined>> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      const frame = this.frames.shift();
      if (frame !== undefined) {
        if (this.paused && this.frames.length < STREAM_HIGH_WATER_FRAMES / 2) {
          this.paused = false;
          this.stream.resume();
        }
        try {
          // An uncompressed frame parses synchronously: no async decode() and
          // its await per message (two promises and a microtask turn).
          const value = frame.compressed ? await this.decode(frame) : this.parse(frame.data);
          return { done: false, value };
        } catch (e) {
          const err = ConnectError.from(e, Code.Internal);
          this.fail(err);
          throw err;
        }
      }
      if (this.isDone()) {
        const header = this.header as Headers;
        const err = this.trailersOnly
          ? statusError(header, undefined)
          : statusError(this.trailer, header);
        if (err !== undefined) throw err;
        if (!this.trailersOnly && !this.gotTrailers) {
          throw new ConnectError("protocol error: missing status", Code.Internal);
        }
        return { done: true, value: undefined };
      }
      await this.wait();
    }
  }

  /** cancel ends the call from the caller's side (a `break` out of the response stream). */
  cancel(): void {
    if (!this.isDone()) {
      this.fail(new ConnectError("the call was canceled by the client", Code.Canceled));
    }
    this.cleanup();
  }

  /** isActive says whether the call may still send. */
  get isActive(): boolean {
    return !this.isDone();
  }
}

/**
 * statusError reads grpc-status, grpc-message and grpc-status-details-bin
 * from trailers (or a Trailers-Only header) into a ConnectError with the
 * response metadata (trailers, then headers, as Connect does), undefined
 * for OK. A missing grpc-status is INTERNAL "protocol error: missing status".
 */
export function statusError(
  trailer: Headers,
  header: Headers | undefined,
): ConnectError | undefined {
  const status = trailer.get("grpc-status");
  if (status === GRPC_STATUS_OK) {
    return undefined;
  }
  let err: ConnectError | undefined;
  const bin = trailer.get(GRPC_STATUS_DETAILS_HEADER);
  if (status === null) {
    if (bin === null) {
      return new ConnectError("protocol error: missing status", Code.Internal, trailer);
    }
    err = decodeStatusDetailsBin(bin, trailer);
    if (err === undefined) return undefined;
  } else {
    const code = Number(status);
    if (!isValidCode(code) || !/^\d+$/.test(status)) {
      err = new ConnectError(`invalid grpc-status: ${status}`, Code.Internal, trailer);
    } else {
      const fromBin = bin === null ? undefined : decodeStatusDetailsBin(bin, trailer);
      err = new ConnectError(
        fromBin?.rawMessage ?? decodeGrpcMessage(trailer.get("grpc-message") ?? ""),
        code,
        trailer,
      );
      if (fromBin !== undefined) err.details = fromBin.details;
    }
  }
  // The same marker Connect's own transports set: this status came from the
  // server, it is not a local failure.
  err.isWireError = true;
  if (header !== undefined && header !== trailer) {
    const metadata = err.metadata;
    header.forEach((value, key) => {
      metadata.append(key, value);
    });
  }
  return err;
}
