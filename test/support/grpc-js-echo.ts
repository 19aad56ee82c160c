// test.v1.EchoService for @grpc/grpc-js, without proto-loader: the grpc-js
// service definition is derived from the protobuf-es descriptors in gen/, and
// messages are (de)serialized with protobuf-es. Also here: a grpc-js server
// implementation and a mesh (Connect) implementation of EchoService that behave
// the same way, and a CallLog through which tests see what the server observed.
//
// Shared behaviour of both implementations (served_by tells them apart):
// - request metadata keys starting with `x-echo-` come back as response
//   headers and again as trailers (binary `-bin` keys too); for every `-bin`
//   key the server also answers `x-seen-hex-<key>` with the bytes it decoded;
// - Echo: delay_ms waits (cancelled early with the call unless ignore_cancel),
//   fail_code fails with fail_message and two details (see failureDetails),
//   timeout_ms is the remaining deadline the handler saw (0 for none);
// - the `x-test-id` request header names the call in the CallLog.

import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  decodeBinaryHeader,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import {
  type EchoBidiRequest,
  type EchoBidiRequestSchema,
  type EchoBidiResponse,
  type EchoBidiResponseSchema,
  type EchoClientStreamRequest,
  type EchoClientStreamRequestSchema,
  type EchoClientStreamResponse,
  type EchoClientStreamResponseSchema,
  type EchoRequest,
  type EchoRequestSchema,
  type EchoResponse,
  EchoResponseSchema,
  type EchoServerStreamRequest,
  type EchoServerStreamRequestSchema,
  type EchoServerStreamResponse,
  type EchoServerStreamResponseSchema,
  EchoService,
} from "../../gen/test/v1/echo_pb.js";
import { type DetailInit, encodeRpcStatus, STATUS_DETAILS_KEY } from "./grpc-js-rpc-status.js";

export { EchoService };

// --- grpc-js service definition from protobuf-es descriptors ----------------

type Init<D extends DescMessage> = MessageInitShape<D>;

// The definitions come from the library's public interop helper.
import { createRequestQueue, type RequestQueue } from "../../src/discovery/etcd-client.js";
import { grpcMethodDefinition } from "../../src/interop/grpc-js-definition.js";

export { grpcMethodDefinition };

/** echoServiceDefinition is test.v1.EchoService for grpc-js, keyed by local method name. */
export const echoServiceDefinition = {
  echo: grpcMethodDefinition(EchoService.method.echo),
  echoClientStream: grpcMethodDefinition(EchoService.method.echoClientStream),
  echoServerStream: grpcMethodDefinition(EchoService.method.echoServerStream),
  echoBidi: grpcMethodDefinition(EchoService.method.echoBidi),
} satisfies grpc.ServiceDefinition;

/** EchoGrpcClient is the typed view of a grpc-js generic client for EchoService. */
export interface EchoGrpcClient extends grpc.Client {
  echo(
    request: Init<typeof EchoRequestSchema>,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<EchoResponse>,
  ): grpc.ClientUnaryCall;
  echoClientStream(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: grpc.requestCallback<EchoClientStreamResponse>,
  ): grpc.ClientWritableStream<Init<typeof EchoClientStreamRequestSchema>>;
  echoServerStream(
    request: Init<typeof EchoServerStreamRequestSchema>,
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<EchoServerStreamResponse>;
  echoBidi(
    metadata?: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientDuplexStream<Init<typeof EchoBidiRequestSchema>, EchoBidiResponse>;
}

/** EchoGrpcClientConstructor is grpc-js's generic client constructor for EchoService. */
export const EchoGrpcClientConstructor = grpc.makeGenericClientConstructor(
  echoServiceDefinition,
  EchoService.typeName,
);

/** createEchoGrpcClient connects a grpc-js client (insecure h2c) to `host:port`. */
export function createEchoGrpcClient(
  address: string,
  options: Partial<grpc.ChannelOptions> = {},
): EchoGrpcClient {
  return new EchoGrpcClientConstructor(
    address,
    grpc.credentials.createInsecure(),
    options,
  ) as unknown as EchoGrpcClient;
}

/** GrpcUnaryOutcome is everything a grpc-js client saw of one unary call. */
export interface GrpcUnaryOutcome<T> {
  readonly response: T | undefined;
  readonly error: grpc.ServiceError | undefined;
  readonly header: grpc.Metadata | undefined;
  readonly status: grpc.StatusObject;
  readonly elapsedMs: number;
}

/** grpcUnary runs a grpc-js unary Echo call and resolves with its full outcome (never rejects). */
export function grpcUnary(
  client: EchoGrpcClient,
  request: Init<typeof EchoRequestSchema>,
  options: { metadata?: grpc.Metadata; timeoutMs?: number; cancelAfterMs?: number } = {},
): Promise<GrpcUnaryOutcome<EchoResponse>> {
  const started = performance.now();
  const callOptions: grpc.CallOptions =
    options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
  return new Promise((resolve) => {
    let header: grpc.Metadata | undefined;
    let result:
      | { response: EchoResponse | undefined; error: grpc.ServiceError | undefined }
      | undefined;
    let status: grpc.StatusObject | undefined;
    const finish = () => {
      if (result !== undefined && status !== undefined) {
        resolve({ ...result, header, status, elapsedMs: performance.now() - started });
      }
    };
    const call = client.echo(
      request,
      options.metadata ?? new grpc.Metadata(),
      callOptions,
      (error, response) => {
        result = { response, error: error ?? undefined };
        finish();
      },
    );
    call.on("metadata", (m: grpc.Metadata) => {
      header = m;
    });
    call.on("status", (s: grpc.StatusObject) => {
      status = s;
      finish();
    });
    if (options.cancelAfterMs !== undefined) {
      const t = setTimeout(() => call.cancel(), options.cancelAfterMs);
      call.on("status", () => clearTimeout(t));
    }
  });
}

// --- what servers observed ---------------------------------------------------

/** CallRecord is what a test server observed of one call (named by `x-test-id`). */
export interface CallRecord {
  readonly id: string;
  readonly method: string;
  readonly startedAt: number;
  /** timeoutMs is the remaining deadline the handler saw at its start; undefined for none. */
  timeoutMs?: number;
  /** finishedAfterMs is when the handler sent its status (OK or error), after start. */
  finishedAfterMs?: number;
  /**
   * cancelledAfterMs is when the handler saw its call cancelled, after start;
   * only set when that came before the handler finished.
   */
  cancelledAfterMs?: number;
  /**
   * cancelCode is the gRPC code the server gave the cancellation: for a mesh
   * server the code of its signal's abort reason; for grpc-js (which only says
   * "cancelled") DEADLINE_EXCEEDED when it came at or after the deadline.
   */
  cancelCode?: number;
}

/** CallLog collects CallRecords; tests wait on it for server-side observations. */
export class CallLog {
  readonly records = new Map<string, CallRecord>();

  start(id: string | undefined, method: string): CallRecord {
    const record: CallRecord = { id: id ?? "", method, startedAt: performance.now() };
    if (id !== undefined) {
      this.records.set(id, record);
    }
    return record;
  }

  /** waitFor resolves with the record once `ready(record)` holds, or rejects after `timeoutMs`. */
  async waitFor(
    id: string,
    ready: (r: CallRecord) => boolean,
    timeoutMs = 2_000,
  ): Promise<CallRecord> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const r = this.records.get(id);
      if (r !== undefined && ready(r)) {
        return r;
      }
      if (performance.now() > until) {
        throw new Error(`call ${id}: condition not met in ${timeoutMs} ms: ${JSON.stringify(r)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

let nextId = 0;
/** newTestId returns a fresh `x-test-id` value. */
export function newTestId(prefix = "call"): string {
  nextId++;
  return `${prefix}-${process.pid}-${nextId}`;
}

// --- shared conventions --------------------------------------------------------

export const TEST_ID_HEADER = "x-test-id";
export const ECHO_PREFIX = "x-echo-";
export const SEEN_HEX_PREFIX = "x-seen-hex-";

/** NO_DETAILS_PREFIX in fail_message makes the servers fail without error details. */
export const NO_DETAILS_PREFIX = "no-details:";

/**
 * failureDetails are the details both implementations attach to a requested
 * failure: an EchoResponse (payload = request payload, timeout_ms = the code,
 * served_by) and a google.protobuf.StringValue holding the message; none when
 * the message starts with NO_DETAILS_PREFIX.
 */
export function failureDetails(
  code: number,
  message: string,
  payload: Uint8Array,
  servedBy: string,
): DetailInit[] {
  if (message.startsWith(NO_DETAILS_PREFIX)) {
    return [];
  }
  return [
    { desc: EchoResponseSchema, value: { payload, timeoutMs: code, servedBy } },
    { desc: StringValueSchema, value: { value: message } },
  ];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- grpc-js server implementation ------------------------------------------------

type GrpcServerCall = {
  readonly metadata: grpc.Metadata;
  readonly cancelled: boolean;
  getDeadline(): grpc.Deadline;
  on(event: "cancelled", listener: () => void): unknown;
};

/** remainingMs turns a grpc-js deadline into the time left, 0 for none. */
function remainingMs(deadline: grpc.Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

/** grpcEchoMetadata builds the echoed response header and trailer for a grpc-js call. */
function grpcEchoMetadata(request: grpc.Metadata): {
  header: grpc.Metadata;
  trailer: grpc.Metadata;
} {
  const header = new grpc.Metadata();
  const trailer = new grpc.Metadata();
  for (const [key, values] of Object.entries(request.toJSON())) {
    if (!key.startsWith(ECHO_PREFIX)) {
      continue;
    }
    for (const v of values) {
      header.add(key, v);
      trailer.add(key, v);
    }
    if (key.endsWith("-bin")) {
      const hex = values.map((v) => (typeof v === "string" ? "?" : v.toString("hex"))).join(",");
      header.set(`${SEEN_HEX_PREFIX}${key.slice(0, -4)}`, hex);
    }
  }
  return { header, trailer };
}

/** finish records that the handler is about to send its status. */
function finish(record: CallRecord): void {
  record.finishedAfterMs ??= performance.now() - record.startedAt;
}

/** watchGrpcCancel records when the handler is told its call was cancelled. */
function watchGrpcCancel(call: GrpcServerCall, record: CallRecord): void {
  const deadline = call.getDeadline();
  const remaining = remainingMs(deadline);
  if (remaining > 0) {
    record.timeoutMs = remaining;
  }
  call.on("cancelled", () => {
    // grpc-js 1.14 also emits 'cancelled' when the stream closes after a
    // normal finish; only a cancellation before the handler finished counts.
    if (record.cancelledAfterMs !== undefined || record.finishedAfterMs !== undefined) {
      return;
    }
    record.cancelledAfterMs = performance.now() - record.startedAt;
    // grpc-js tells handlers only "cancelled"; when its own deadline timer
    // fired, it has sent DEADLINE_EXCEEDED to the client.
    const at = deadline instanceof Date ? deadline.getTime() : deadline;
    record.cancelCode =
      Date.now() >= at - 1 ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED;
  });
}

function grpcFailure(
  code: number,
  message: string,
  payload: Uint8Array,
  servedBy: string,
  trailer: grpc.Metadata,
): grpc.ServerErrorResponse {
  const metadata = trailer.clone();
  const details = failureDetails(code, message, payload, servedBy);
  if (details.length > 0) {
    metadata.set(STATUS_DETAILS_KEY, encodeRpcStatus(code, message, details));
  }
  return Object.assign(new Error(message), { code, details: message, metadata });
}

/** createGrpcJsEchoImpl is EchoService for a grpc-js server. */
export function createGrpcJsEchoImpl(
  log: CallLog,
  servedBy = "grpc-js",
): grpc.UntypedServiceImplementation {
  const idOf = (call: GrpcServerCall) => call.metadata.get(TEST_ID_HEADER)[0]?.toString();
  const echo: grpc.handleUnaryCall<EchoRequest, Init<typeof EchoResponseSchema>> = async (
    call,
    callback,
  ) => {
    const record = log.start(idOf(call), "echo");
    watchGrpcCancel(call, record);
    const req = call.request;
    const timeoutMs = remainingMs(call.getDeadline());
    const { header, trailer } = grpcEchoMetadata(call.metadata);
    call.sendMetadata(header);
    if (req.delayMs > 0) {
      if (req.ignoreCancel) {
        await sleep(req.delayMs);
      } else {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, req.delayMs);
          call.on("cancelled", () => {
            clearTimeout(t);
            resolve();
          });
        });
        if (call.cancelled) {
          return;
        }
      }
    }
    if (req.failCode !== 0) {
      const message = req.failMessage || "requested failure";
      finish(record);
      callback(grpcFailure(req.failCode, message, req.payload, servedBy, trailer));
      return;
    }
    finish(record);
    callback(null, { payload: req.payload, timeoutMs, servedBy }, trailer);
  };
  const echoClientStream: grpc.handleClientStreamingCall<
    EchoClientStreamRequest,
    Init<typeof EchoClientStreamResponseSchema>
  > = (call, callback) => {
    const record = log.start(idOf(call), "echoClientStream");
    watchGrpcCancel(call, record);
    const { header, trailer } = grpcEchoMetadata(call.metadata);
    call.sendMetadata(header);
    const parts: Uint8Array[] = [];
    call.on("data", (r: EchoClientStreamRequest) => parts.push(r.payload));
    call.on("end", () => {
      finish(record);
      callback(null, { payload: Buffer.concat(parts), count: parts.length }, trailer);
    });
  };
  const echoServerStream: grpc.handleServerStreamingCall<
    EchoServerStreamRequest,
    Init<typeof EchoServerStreamResponseSchema>
  > = async (call) => {
    const record = log.start(idOf(call), "echoServerStream");
    watchGrpcCancel(call, record);
    const req = call.request;
    const { header, trailer } = grpcEchoMetadata(call.metadata);
    call.sendMetadata(header);
    for (let i = 0; i < req.repeat; i++) {
      if (req.intervalMs > 0) {
        await sleep(req.intervalMs);
      }
      if (call.cancelled) {
        return;
      }
      call.write({ payload: req.payload, index: i });
    }
    if (req.failCode !== 0) {
      const message = "requested failure after stream";
      finish(record);
      call.emit("error", grpcFailure(req.failCode, message, req.payload, servedBy, trailer));
      return;
    }
    finish(record);
    call.end(trailer);
  };
  const echoBidi: grpc.handleBidiStreamingCall<
    EchoBidiRequest,
    Init<typeof EchoBidiResponseSchema>
  > = (call) => {
    const record = log.start(idOf(call), "echoBidi");
    watchGrpcCancel(call, record);
    const { header, trailer } = grpcEchoMetadata(call.metadata);
    call.sendMetadata(header);
    let index = 0;
    call.on("data", (r: EchoBidiRequest) => {
      call.write({ payload: r.payload, index: index++ });
    });
    call.on("end", () => {
      finish(record);
      call.end(trailer);
    });
  };
  return { echo, echoClientStream, echoServerStream, echoBidi };
}

/** GrpcJsEchoServer is a running grpc-js server with EchoService. */
export interface GrpcJsEchoServer {
  readonly server: grpc.Server;
  readonly address: string;
  readonly log: CallLog;
  close(): Promise<void>;
}

/** startGrpcJsEchoServer starts a grpc-js server with EchoService on 127.0.0.1, port 0. */
export async function startGrpcJsEchoServer(servedBy = "grpc-js"): Promise<GrpcJsEchoServer> {
  const log = new CallLog();
  const server = new grpc.Server();
  server.addService(echoServiceDefinition, createGrpcJsEchoImpl(log, servedBy));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    server,
    address: `127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Calls still open after a moment are cut, so afterAll never hangs.
        setTimeout(() => server.forceShutdown(), 500).unref();
      }),
  };
}

// --- mesh (Connect) server implementation -----------------------------------------

/** meshEchoMetadata echoes `x-echo-*` request headers as response headers and trailers. */
function meshEchoMetadata(ctx: HandlerContext): void {
  const binary = new Map<string, string>();
  ctx.requestHeader.forEach((value, key) => {
    if (!key.startsWith(ECHO_PREFIX)) {
      return;
    }
    // Repeated request headers arrive joined by ", ", as one value.
    ctx.responseHeader.set(key, value);
    ctx.responseTrailer.set(key, value);
    if (key.endsWith("-bin")) {
      // Binary values arrive base64-encoded; several are joined by ", ".
      const hex = value
        .split(",")
        .map((v) => Buffer.from(decodeBinaryHeader(v.trim())).toString("hex"))
        .join(",");
      binary.set(`${SEEN_HEX_PREFIX}${key.slice(0, -4)}`, hex);
    }
  });
  for (const [k, v] of binary) {
    ctx.responseHeader.set(k, v);
  }
}

/** watchMeshCancel records when the handler's signal aborts, and the reason's code. */
function watchMeshCancel(ctx: HandlerContext, record: CallRecord): void {
  const remaining = ctx.timeoutMs();
  if (remaining !== undefined) {
    record.timeoutMs = remaining;
  }
  const onAbort = () => {
    if (record.finishedAfterMs !== undefined) {
      return;
    }
    record.cancelledAfterMs = performance.now() - record.startedAt;
    record.cancelCode = ConnectError.from(ctx.signal.reason).code;
  };
  if (ctx.signal.aborted) {
    onAbort();
  } else {
    ctx.signal.addEventListener("abort", onAbort, { once: true });
  }
}

function meshFailure(
  code: number,
  message: string,
  payload: Uint8Array,
  servedBy: string,
): ConnectError {
  return new ConnectError(
    message,
    code as Code,
    undefined,
    failureDetails(code, message, payload, servedBy).map((d) => ({ desc: d.desc, value: d.value })),
  );
}

function meshSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(ConnectError.from(signal?.reason, Code.Canceled));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * createMeshEchoImpl is EchoService for a mesh server, behaving like
 * createGrpcJsEchoImpl (createEchoImpl in echo-service.ts does not echo
 * metadata, record cancellation or attach error details).
 */
export function createMeshEchoImpl(
  log: CallLog,
  servedBy = "mesh",
): ServiceImpl<typeof EchoService> {
  const begin = (ctx: HandlerContext, method: string) => {
    const record = log.start(ctx.requestHeader.get(TEST_ID_HEADER) ?? undefined, method);
    watchMeshCancel(ctx, record);
    meshEchoMetadata(ctx);
    return record;
  };
  return {
    async echo(req, ctx) {
      const record = begin(ctx, "echo");
      const timeoutMs = ctx.timeoutMs() ?? 0;
      if (req.delayMs > 0) {
        await meshSleep(req.delayMs, req.ignoreCancel ? undefined : ctx.signal);
      }
      finish(record);
      if (req.failCode !== 0) {
        throw meshFailure(
          req.failCode,
          req.failMessage || "requested failure",
          req.payload,
          servedBy,
        );
      }
      return { payload: req.payload, timeoutMs, servedBy };
    },
    async echoClientStream(reqs, ctx) {
      const record = begin(ctx, "echoClientStream");
      const parts: Uint8Array[] = [];
      for await (const r of reqs) {
        parts.push(r.payload);
      }
      finish(record);
      return { payload: Buffer.concat(parts), count: parts.length };
    },
    async *echoServerStream(req, ctx) {
      const record = begin(ctx, "echoServerStream");
      for (let i = 0; i < req.repeat; i++) {
        if (req.intervalMs > 0) {
          await meshSleep(req.intervalMs, ctx.signal);
        }
        yield { payload: req.payload, index: i };
      }
      finish(record);
      if (req.failCode !== 0) {
        throw meshFailure(req.failCode, "requested failure after stream", req.payload, servedBy);
      }
    },
    async *echoBidi(reqs, ctx) {
      const record = begin(ctx, "echoBidi");
      let index = 0;
      for await (const r of reqs) {
        yield { payload: r.payload, index: index++ };
      }
      finish(record);
    },
  };
}

// --- client-side helpers ------------------------------------------------------

/** Pushable is an async iterable fed by push() and ended by end(), for bidi ping-pong. */
/** Pushable is a single-consumer queue usable as a streaming request (the library's own). */
export type Pushable<T> = RequestQueue<T>;

/** createPushable returns a single-consumer queue usable as a streaming request. */
export const createPushable: <T>() => Pushable<T> = createRequestQueue;

/** CODES lists gRPC codes 1..16 with their canonical names, for it.each tables. */
export const CODES: ReadonlyArray<{ readonly code: number; readonly name: string }> =
  Object.entries(grpc.status)
    .filter((e): e is [string, number] => typeof e[1] === "number" && e[1] >= 1 && e[1] <= 16)
    .map(([name, code]) => ({ code, name }))
    .sort((a, b) => a.code - b.code);

export type {
  EchoBidiRequest,
  EchoBidiResponse,
  EchoClientStreamRequest,
  EchoClientStreamResponse,
  EchoRequest,
  EchoResponse,
  EchoServerStreamRequest,
  EchoServerStreamResponse,
};
export { EchoResponseSchema };
