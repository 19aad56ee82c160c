// Interop: a real @grpc/grpc-js client (generic client built from protobuf-es
// descriptors, no proto-loader) calling a real mesh server over h2c.

import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema } from "../../gen/test/v1/echo_pb.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";
import {
  CallLog,
  CODES,
  createEchoGrpcClient,
  createMeshEchoImpl,
  type EchoGrpcClient,
  EchoResponseSchema,
  type EchoServerStreamResponse,
  EchoService,
  grpcUnary,
  NO_DETAILS_PREFIX,
  newTestId,
  SEEN_HEX_PREFIX,
  TEST_ID_HEADER,
} from "../support/grpc-js-echo.js";
import { decodeRpcStatus, findDetail } from "../support/grpc-js-rpc-status.js";

const SERVED_BY = "mesh-under-test";

interface StreamOutcome<T> {
  readonly messages: T[];
  readonly header: grpc.Metadata | undefined;
  readonly status: grpc.StatusObject;
  readonly error: grpc.ServiceError | undefined;
}

/** collect reads a grpc-js response stream to its status. */
function collect<T>(call: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>) {
  return new Promise<StreamOutcome<T>>((resolve) => {
    const messages: T[] = [];
    let header: grpc.Metadata | undefined;
    let error: grpc.ServiceError | undefined;
    call.on("data", (m: T) => messages.push(m));
    call.on("metadata", (m: grpc.Metadata) => {
      header = m;
    });
    call.on("error", (e: grpc.ServiceError) => {
      error = e;
    });
    call.on("status", (status: grpc.StatusObject) => {
      // Let buffered 'data' and 'error' events run first.
      setImmediate(() => resolve({ messages, header, status, error }));
    });
  });
}

/**
 * rawGrpcUnary sends one gRPC request with node:http2 and never cancels it:
 * whatever status arrives was decided by the server. elapsedMs counts from
 * sending the request on an established connection.
 */
async function rawGrpcUnary(
  url: string,
  req: { path: string; message: Uint8Array; headers: Record<string, string> },
): Promise<{ grpcStatus: string | undefined; elapsedMs: number }> {
  const session = http2.connect(url);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("error", reject);
    });
    return await new Promise((resolve, reject) => {
      const started = performance.now();
      const stream = session.request({
        ":method": "POST",
        ":path": req.path,
        "content-type": "application/grpc",
        te: "trailers",
        ...req.headers,
      });
      let grpcStatus: string | undefined;
      const readStatus = (h: http2.IncomingHttpHeaders) => {
        const v = h["grpc-status"];
        grpcStatus ??= Array.isArray(v) ? v[0] : v;
      };
      stream.on("response", readStatus); // trailers-only responses
      stream.on("trailers", readStatus);
      stream.on("data", () => {});
      stream.on("error", reject);
      stream.on("close", () => resolve({ grpcStatus, elapsedMs: performance.now() - started }));
      const frame = Buffer.alloc(5 + req.message.length);
      frame.writeUInt32BE(req.message.length, 1);
      frame.set(req.message, 5);
      stream.end(frame);
    });
  } finally {
    session.close();
  }
}

function metadataWithId(id: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set(TEST_ID_HEADER, id);
  return md;
}

describe("interop: grpc-js client → mesh server", () => {
  const log = new CallLog();
  let server: MeshServer;
  let client: EchoGrpcClient;

  beforeAll(async () => {
    server = createMeshServer({
      routes: (router) => router.service(EchoService, createMeshEchoImpl(log, SERVED_BY)),
    });
    const { address } = await server.listen({ host: "127.0.0.1", port: 0 });
    client = createEchoGrpcClient(address);
  });

  afterAll(async () => {
    client?.close();
    await server?.close({ graceMs: 0 });
  });

  describe("call shapes", () => {
    it("unary echo returns the payload and served_by", async () => {
      const out = await grpcUnary(client, { payload: new Uint8Array([1, 2, 3]) });
      expect(out.error).toBeUndefined();
      expect(out.status.code).toBe(grpc.status.OK);
      expect([...(out.response?.payload ?? [])]).toEqual([1, 2, 3]);
      expect(out.response?.servedBy).toBe(SERVED_BY);
      // No deadline set: the handler sees none.
      expect(out.response?.timeoutMs).toBe(0);
    });

    it("server streaming delivers every message in order, then OK", async () => {
      const out = await collect(
        client.echoServerStream({ payload: new Uint8Array([7]), repeat: 5 }),
      );
      expect(out.error).toBeUndefined();
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.messages.map((m) => m.index)).toEqual([0, 1, 2, 3, 4]);
      expect(out.messages.every((m) => m.payload[0] === 7)).toBe(true);
    });

    it("server streaming error after messages keeps messages, code, message and details", async () => {
      const out = await collect<EchoServerStreamResponse>(
        client.echoServerStream({
          payload: new Uint8Array([4]),
          repeat: 2,
          failCode: grpc.status.RESOURCE_EXHAUSTED,
        }),
      );
      expect(out.messages.map((m) => m.index)).toEqual([0, 1]);
      expect(out.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(out.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(out.status.details).toBe("requested failure after stream");
      const rpcStatus = decodeRpcStatus(out.status.metadata);
      expect(rpcStatus?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect([...(findDetail(rpcStatus, EchoResponseSchema)?.payload ?? [])]).toEqual([4]);
    });

    it("client streaming joins all request messages", async () => {
      const res = await new Promise<{ payload: Uint8Array; count: number }>((resolve, reject) => {
        const call = client.echoClientStream(new grpc.Metadata(), {}, (err, r) =>
          err || r === undefined ? reject(err) : resolve(r),
        );
        call.write({ payload: new Uint8Array([1, 2]) });
        call.write({ payload: new Uint8Array([3]) });
        call.write({ payload: new Uint8Array([4, 5, 6]) });
        call.end();
      });
      expect(res.count).toBe(3);
      expect([...res.payload]).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it("bidi streaming answers each message before the next is sent (full duplex)", async () => {
      const call = client.echoBidi();
      const done = collect(call);
      const answers: number[] = [];
      // Ping-pong: send the next message only after the previous answer came back.
      for (let i = 0; i < 4; i++) {
        const answer = new Promise<number>((resolve) =>
          call.once("data", (m: { payload: Uint8Array }) => resolve(m.payload[0] ?? -1)),
        );
        call.write({ payload: new Uint8Array([10 + i]) });
        answers.push(await answer);
      }
      call.end();
      const out = await done;
      expect(answers).toEqual([10, 11, 12, 13]);
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.messages.map((m) => m.index)).toEqual([0, 1, 2, 3]);
    });

    it("64 KiB payloads round-trip with gzip-compressed requests and responses", async () => {
      // Compressible (Connect's server compresses responses >= 1 KiB when the
      // client accepts gzip) with a random tail so corruption would show.
      const payload = Buffer.concat([Buffer.alloc(60 * 1024, "abc"), randomBytes(4 * 1024)]);
      const gzipClient = createEchoGrpcClient(server.address?.address ?? "", {
        "grpc.default_compression_algorithm": grpc.compressionAlgorithms.gzip,
      });
      try {
        const out = await grpcUnary(gzipClient, { payload });
        expect(out.status.code).toBe(grpc.status.OK);
        expect(Buffer.from(out.response?.payload ?? []).equals(payload)).toBe(true);
      } finally {
        gzipClient.close();
      }
    });
  });

  describe("errors", () => {
    const CODE_ROWS = CODES.map((c) => [c.name, c.code] as const);
    // Stock Connect percent-encodes grpc-message with encodeURIComponent, which
    // grpc-js's decodeURI undoes only partly ("boom%3A x"); the mesh's gRPC
    // handler encodes per the gRPC spec, so every message arrives exactly.
    // The google.rpc.Status in grpc-status-details-bin carries the exact text.
    it.each(CODE_ROWS)("unary error code %s keeps message and details", async (name, code) => {
      const message = `failure ${name} ünïcode ✓ 100% done`;
      const out = await grpcUnary(client, {
        payload: new Uint8Array([code]),
        failCode: code,
        failMessage: message,
      });
      expect(out.response).toBeUndefined();
      expect(out.error?.code).toBe(code);
      expect(out.status.code).toBe(code);
      // No reserved characters in this message, so it arrives exactly.
      expect(out.status.details).toBe(message);
      expect(out.error?.details).toBe(message);
      expect(out.error?.message).toBe(`${code} ${name}: ${message}`);
      const rpcStatus = decodeRpcStatus(out.status.metadata);
      expect(rpcStatus?.code).toBe(code);
      expect(rpcStatus?.message).toBe(message);
      expect(rpcStatus?.details).toHaveLength(2);
      const echoed = findDetail(rpcStatus, EchoResponseSchema);
      expect(echoed?.timeoutMs).toBe(code);
      expect(echoed?.servedBy).toBe(SERVED_BY);
      expect([...(echoed?.payload ?? [])]).toEqual([code]);
      expect(findDetail(rpcStatus, StringValueSchema)?.value).toBe(message);
    });

    it("error message with reserved characters arrives exactly (spec percent-encoding)", async () => {
      const message = `${NO_DETAILS_PREFIX} a: b/c, d?e#f 100% ✓`;
      const out = await grpcUnary(client, { failCode: grpc.status.ABORTED, failMessage: message });
      expect(out.status.code).toBe(grpc.status.ABORTED);
      // The lean gRPC handler encodes only bytes outside 0x20-0x7E and `%`,
      // so grpc-js's decodeURI gives the message back unchanged.
      expect(out.status.details).toBe(message);
      // No details were attached, so there is no grpc-status-details-bin.
      expect(decodeRpcStatus(out.status.metadata)).toBeUndefined();
    });
  });

  describe("metadata", () => {
    it("request metadata reaches the handler and comes back as response headers and trailers", async () => {
      const md = new grpc.Metadata();
      md.set("x-echo-text", "hello");
      md.add("x-echo-multi", "a");
      md.add("x-echo-multi", "b");
      md.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      md.set("x-not-echoed", "nope");
      const out = await grpcUnary(client, { payload: new Uint8Array([1]) }, { metadata: md });
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.header?.get("x-echo-text")).toEqual(["hello"]);
      // Connect joins repeated request headers with ", " before the handler sees them.
      expect(out.header?.get("x-echo-multi")).toEqual(["a, b"]);
      expect(out.header?.get("x-not-echoed")).toEqual([]);
      expect(out.status.metadata.get("x-echo-text")).toEqual(["hello"]);
      expect(out.status.metadata.get("x-echo-multi")).toEqual(["a, b"]);
      expect(out.status.metadata.get("x-not-echoed")).toEqual([]);
    });

    it("binary -bin metadata crosses both ways byte-exact", async () => {
      const one = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
      const two = Buffer.from([42]);
      const md = new grpc.Metadata();
      md.add("x-echo-blob-bin", one);
      md.add("x-echo-blob-bin", two);
      const out = await grpcUnary(client, {}, { metadata: md });
      expect(out.status.code).toBe(grpc.status.OK);
      // The mesh handler decoded the same bytes grpc-js sent...
      expect(out.header?.get(`${SEEN_HEX_PREFIX}x-echo-blob`)).toEqual([
        `${one.toString("hex")},${two.toString("hex")}`,
      ]);
      // ...and grpc-js decodes the echoed header and trailer back to both values.
      expect(out.header?.get("x-echo-blob-bin")).toEqual([one, two]);
      expect(out.status.metadata.get("x-echo-blob-bin")).toEqual([one, two]);
    });

    it("server streaming sends response headers before messages and trailers after", async () => {
      const md = new grpc.Metadata();
      md.set("x-echo-stream", "s1");
      const out = await collect(
        client.echoServerStream({ payload: new Uint8Array([1]), repeat: 2 }, md),
      );
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.header?.get("x-echo-stream")).toEqual(["s1"]);
      expect(out.status.metadata.get("x-echo-stream")).toEqual(["s1"]);
    });
  });

  describe("deadlines and cancellation", () => {
    it("the handler sees the remaining deadline: close to but not above the client's timeout", async () => {
      const out = await grpcUnary(client, {}, { timeoutMs: 2_000 });
      expect(out.status.code).toBe(grpc.status.OK);
      expect(out.response?.timeoutMs).toBeLessThanOrEqual(2_000);
      expect(out.response?.timeoutMs).toBeGreaterThan(1_500);
    });

    it("deadline with a handler ignoring cancellation: both ends see DEADLINE_EXCEEDED at the deadline", async () => {
      const id = newTestId("deadline");
      const out = await grpcUnary(
        client,
        { delayMs: 3_000, ignoreCancel: true },
        { timeoutMs: 100, metadata: metadataWithId(id) },
      );
      expect(out.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
      expect(out.elapsedMs).toBeGreaterThanOrEqual(95);
      expect(out.elapsedMs).toBeLessThan(1_500); // generous; the handler would take 3 s
      const seen = await log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      expect(seen.timeoutMs).toBeGreaterThan(50);
      expect(seen.timeoutMs).toBeLessThanOrEqual(100);
      expect(seen.cancelledAfterMs).toBeLessThan(1_500);
      // Race, not a bug: at the deadline grpc-js resets the stream with CANCEL
      // while the mesh server's own timer fires; whichever lands first is the
      // abort reason (measured about half and half). The raw HTTP/2 test below
      // shows the server's own enforcement without the client's reset.
      expect([Code.DeadlineExceeded, Code.Canceled]).toContain(seen.cancelCode);
    });

    it("the mesh server itself ends an ignored call with DEADLINE_EXCEEDED at the deadline (raw HTTP/2 peer that never cancels)", async () => {
      const id = newTestId("deadline-raw");
      const out = await rawGrpcUnary(server.address?.url ?? "", {
        path: "/test.v1.EchoService/Echo",
        message: toBinary(
          EchoRequestSchema,
          create(EchoRequestSchema, { delayMs: 3_000, ignoreCancel: true }),
        ),
        headers: { "grpc-timeout": "100m", [TEST_ID_HEADER]: id },
      });
      expect(out.grpcStatus).toBe(String(grpc.status.DEADLINE_EXCEEDED));
      expect(out.elapsedMs).toBeGreaterThanOrEqual(95);
      expect(out.elapsedMs).toBeLessThan(1_500); // generous; the handler would take 3 s
      const seen = await log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      expect(seen.cancelCode).toBe(Code.DeadlineExceeded);
    });

    it("client cancel (call.cancel()) of a unary call reaches the handler's signal", async () => {
      const id = newTestId("cancel");
      const out = await grpcUnary(
        client,
        { delayMs: 5_000 },
        { cancelAfterMs: 100, metadata: metadataWithId(id) },
      );
      expect(out.status.code).toBe(grpc.status.CANCELLED);
      expect(out.elapsedMs).toBeLessThan(2_500);
      const seen = await log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      // Measured from the handler's start, which a busy host delays: no lower bound.
      expect(seen.cancelledAfterMs).toBeGreaterThanOrEqual(0);
      expect(seen.cancelledAfterMs).toBeLessThan(2_500);
      expect(seen.cancelCode).toBe(Code.Canceled);
    });

    it("client cancel of a server stream reaches the handler's signal", async () => {
      const id = newTestId("cancel-stream");
      const call = client.echoServerStream(
        { payload: new Uint8Array([1]), repeat: 1_000, intervalMs: 20 },
        metadataWithId(id),
      );
      const done = collect(call);
      await new Promise<void>((resolve) => call.once("data", () => resolve()));
      call.cancel();
      const out = await done;
      expect(out.status.code).toBe(grpc.status.CANCELLED);
      const seen = await log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      expect(seen.cancelCode).toBe(Code.Canceled);
    });
  });
});
