// The mesh server's own gRPC handler on node:http2: grpc-js and raw HTTP/2
// peers on the lean path; gRPC-Web and Connect-protocol clients on the
// connect-node fallback path of the same port.

import type * as http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type HandlerContext,
  type Interceptor,
  type ServiceImpl,
} from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema, EchoResponseSchema, EchoService } from "../../gen/test/v1/echo_pb.js";
import { peerKey, serverCallKey } from "../../src/call/server-call.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";
import { sleep } from "../support/echo-service.js";
import { createEchoGrpcClient, type EchoGrpcClient, grpcUnary } from "../support/grpc-js-echo.js";
import { connect, frame, gzipFrame, messages, rawRequest } from "./server-raw-h2.js";

const ECHO = "/test.v1.EchoService/Echo";

/** Counting echo: every test can tell whether the handler ran, and what it saw. */
function createCountingEcho() {
  const seen = {
    runs: 0,
    timeouts: [] as (number | undefined)[],
    signals: [] as AbortSignal[],
    peers: [] as string[],
    cancelled: 0,
  };
  const impl: ServiceImpl<typeof EchoService> = {
    async echo(req, ctx: HandlerContext) {
      seen.runs++;
      seen.timeouts.push(ctx.timeoutMs());
      seen.signals.push(ctx.signal);
      seen.peers.push(ctx.values.get(peerKey));
      ctx.signal.addEventListener("abort", () => seen.cancelled++);
      const bin = ctx.requestHeader.get("x-in-bin");
      if (bin !== null) {
        ctx.responseHeader.set("x-out-bin", bin);
        ctx.responseTrailer.set("x-trailer-bin", bin);
      }
      ctx.responseHeader.set("x-h", "header-value");
      ctx.responseTrailer.set("x-t", "trailer-value");
      if (req.delayMs > 0) await sleep(req.delayMs, ctx.signal);
      if (req.failCode !== 0) {
        throw new ConnectError(req.failMessage, req.failCode as Code, { "x-err-meta": "m" });
      }
      return { payload: req.payload, timeoutMs: ctx.timeoutMs() ?? 0, servedBy: "lean" };
    },
    async echoClientStream(reqs) {
      const parts: Uint8Array[] = [];
      for await (const r of reqs) parts.push(r.payload);
      return { payload: Buffer.concat(parts), count: parts.length };
    },
    async *echoServerStream(req, ctx) {
      seen.runs++;
      ctx.signal.addEventListener("abort", () => seen.cancelled++);
      for (let i = 0; i < req.repeat; i++) {
        if (req.intervalMs > 0) await sleep(req.intervalMs, ctx.signal);
        yield { payload: req.payload, index: i };
      }
      if (req.failCode !== 0) throw new ConnectError("after stream", req.failCode as Code);
    },
    async *echoBidi(reqs) {
      let i = 0;
      for await (const r of reqs) yield { payload: r.payload, index: i++ };
    },
  };
  return { impl, seen };
}

const echoBytes = (init: Parameters<typeof create<typeof EchoRequestSchema>>[1]) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, init));

describe("lean gRPC server handler", () => {
  let server: MeshServer;
  let url: string;
  let client: EchoGrpcClient;
  let session: http2.ClientHttp2Session;
  const { impl, seen } = createCountingEcho();
  // An interceptor that replaces the response's header and trailer objects:
  // what it returns must reach the wire, as on Connect's own server.
  const replacing: Interceptor = (next) => async (req) => {
    const res = await next(req);
    if (req.header.get("x-replace") === null) return res;
    return {
      ...res,
      header: new Headers({ "x-replaced-header": "h" }),
      trailer: new Headers({ "x-replaced-trailer": "t" }),
    };
  };

  beforeAll(async () => {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, impl),
      interceptors: [replacing],
      logger: false,
    });
    url = (await server.listen()).url;
    client = createEchoGrpcClient(server.address?.address ?? "");
    session = await connect(url);
  });
  afterAll(async () => {
    client.close();
    session.close();
    await server.close({ graceMs: 0 });
  });

  it("a grpc-js client sees error messages exactly, ':' and non-ASCII included", async () => {
    for (const message of ["boom: x", "a/b?c#d, e=f", "ünïcode ✓ 100% done", "tab\there"]) {
      const out = await grpcUnary(client, { failCode: Code.Aborted, failMessage: message });
      expect(out.status.code).toBe(grpc.status.ABORTED);
      expect(out.status.details).toBe(message);
      expect(out.status.metadata.get("x-err-meta")).toEqual(["m"]);
    }
  });

  it("every status code crosses with its message", async () => {
    for (let code = 1; code <= 16; code++) {
      const out = await grpcUnary(client, { failCode: code, failMessage: `c${code}: x` });
      expect(out.status.code).toBe(code);
      expect(out.status.details).toBe(`c${code}: x`);
    }
  });

  it("an error before any message is Trailers-Only; handler headers and trailers ride along", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({ failCode: 5, failMessage: "nf" })));
    expect(r.headersEndStream).toBe(true);
    expect(r.trailers).toBeUndefined();
    expect(r.headers["grpc-status"]).toBe("5");
    expect(r.headers["x-h"]).toBe("header-value");
    expect(r.headers["x-t"]).toBe("trailer-value");
    expect(r.headers["content-type"]).toBe("application/grpc+proto");
  });

  it("success: headers, one message, trailers with grpc-status 0 and handler trailers", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({ payload: new Uint8Array([7]) })));
    expect(r.headersEndStream).toBe(false);
    expect(r.headers["x-h"]).toBe("header-value");
    expect(r.trailers?.["grpc-status"]).toBe("0");
    expect(r.trailers?.["x-t"]).toBe("trailer-value");
    const [m] = messages(r.body);
    expect([...fromBinary(EchoResponseSchema, m?.data ?? new Uint8Array()).payload]).toEqual([7]);
  });

  it("header and trailer objects an interceptor returns replace the handler's on the wire", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({})), { "x-replace": "1" });
    expect(r.headers["x-replaced-header"]).toBe("h");
    expect(r.headers["x-h"]).toBeUndefined();
    expect(r.headers["content-type"]).toBe("application/grpc+proto");
    expect(r.trailers?.["x-replaced-trailer"]).toBe("t");
    expect(r.trailers?.["x-t"]).toBeUndefined();
    expect(r.trailers?.["grpc-status"]).toBe("0");
  });

  it("-bin metadata crosses both ways byte-exact with grpc-js", async () => {
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const md = new grpc.Metadata();
    md.set("x-in-bin", bytes);
    const out = await grpcUnary(client, {}, { metadata: md });
    expect(out.status.code).toBe(grpc.status.OK);
    expect(out.header?.get("x-out-bin")).toEqual([bytes]);
    expect(out.status.metadata.get("x-trailer-bin")).toEqual([bytes]);
  });

  it("a successful call leaves the handler's signal unaborted, and the handler sees its peer", async () => {
    const before = seen.signals.length;
    const out = await grpcUnary(client, {});
    expect(out.status.code).toBe(grpc.status.OK);
    const signal = seen.signals[before];
    expect(signal?.aborted).toBe(false);
    expect(seen.peers[before]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("huge valid grpc-timeouts run normally as 'no deadline' (no 1 ms overflow timer)", async () => {
    for (const t of ["99999999H", "2500000S"]) {
      const r = await rawRequest(session, ECHO, frame(echoBytes({ delayMs: 20 })), {
        "grpc-timeout": t,
      });
      expect(r.status).toBe(0);
      const res = fromBinary(EchoResponseSchema, messages(r.body)[0]?.data ?? new Uint8Array());
      expect(res.timeoutMs).toBe(0);
    }
  });

  it("a deadline passed on arrival is DEADLINE_EXCEEDED and never runs the handler", async () => {
    for (const t of ["0n", "1n", "999n", "0m", "0u"]) {
      const runs = seen.runs;
      const r = await rawRequest(session, ECHO, frame(echoBytes({})), { "grpc-timeout": t });
      expect(r.status, t).toBe(Code.DeadlineExceeded);
      expect(seen.runs, t).toBe(runs);
    }
  });

  it("a malformed grpc-timeout is INVALID_ARGUMENT quoting it, without running the handler", async () => {
    const runs = seen.runs;
    for (const t of ["1.5S", "123456789m", "5", "-1S"]) {
      const bad = await rawRequest(session, ECHO, frame(echoBytes({})), { "grpc-timeout": t });
      expect(bad.status).toBe(Code.InvalidArgument);
      expect(bad.message).toContain(JSON.stringify(t));
    }
    expect(seen.runs).toBe(runs);
  });

  it("the deadline reaches the handler and is enforced", async () => {
    const out = await grpcUnary(client, { delayMs: 5_000 }, { timeoutMs: 200 });
    expect(out.status.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const ok = await grpcUnary(client, {}, { timeoutMs: 30_000 });
    expect(ok.response?.timeoutMs).toBeGreaterThan(0);
    expect(ok.response?.timeoutMs).toBeLessThanOrEqual(30_000);
  });

  it("client cancellation reaches the handler's signal and the call leaves inFlight", async () => {
    const cancelled = seen.cancelled;
    const out = await grpcUnary(client, { delayMs: 10_000 }, { cancelAfterMs: 100 });
    expect(out.status.code).toBe(grpc.status.CANCELLED);
    await expect.poll(() => seen.cancelled).toBeGreaterThan(cancelled);
    await expect.poll(() => server.inFlight).toBe(0);
  });

  it("inFlight counts calls on the lean path", async () => {
    const pending = grpcUnary(client, { delayMs: 300 });
    await expect.poll(() => server.inFlight).toBe(1);
    expect((await pending).status.code).toBe(grpc.status.OK);
    await expect.poll(() => server.inFlight).toBe(0);
  });

  it("unknown methods and services are UNIMPLEMENTED (Trailers-Only)", async () => {
    const m = await rawRequest(session, "/test.v1.EchoService/Nope", frame(new Uint8Array()));
    expect(m.status).toBe(Code.Unimplemented);
    expect(m.headersEndStream).toBe(true);
    expect(m.message).toContain("Nope");
    const s = await rawRequest(session, "/no.Such/Method", frame(new Uint8Array()));
    expect(s.status).toBe(Code.Unimplemented);
  });

  it("bad content gets the right codes", async () => {
    // Not protobuf: field 1 with a length beyond the buffer.
    const garbage = await rawRequest(session, ECHO, frame(Buffer.from([0x0a, 0x7f, 1])));
    expect(garbage.status).toBe(Code.Internal);
    const noEncoding = await rawRequest(session, ECHO, gzipFrame(echoBytes({})));
    expect(noEncoding.status).toBe(Code.Internal);
    const corrupt = await rawRequest(session, ECHO, frame(Buffer.from("not gzip at all"), true), {
      "grpc-encoding": "gzip",
    });
    expect(corrupt.status).toBe(Code.Internal);
    const unknown = await rawRequest(session, ECHO, frame(echoBytes({}), true), {
      "grpc-encoding": "snappy",
    });
    expect(unknown.status).toBe(Code.Unimplemented);
    expect(unknown.headers["grpc-accept-encoding"]).toContain("gzip");
    const empty = await rawRequest(session, ECHO, Buffer.alloc(0));
    expect(empty.status).toBe(Code.Unimplemented);
    const two = await rawRequest(session, ECHO, [frame(echoBytes({})), frame(echoBytes({}))]);
    expect(two.status).toBe(Code.Unimplemented);
    const truncated = await rawRequest(session, ECHO, frame(echoBytes({})).subarray(0, 3));
    expect(truncated.status).toBe(Code.Internal);
  });

  it("gzip requests are inflated; responses stay uncompressed unless configured", async () => {
    const payload = Buffer.alloc(8 * 1024, "z");
    const r = await rawRequest(session, ECHO, gzipFrame(echoBytes({ payload })), {
      "grpc-encoding": "gzip",
      "grpc-accept-encoding": "gzip",
    });
    expect(r.status).toBe(0);
    const [m] = messages(r.body);
    expect(m?.compressed).toBe(false);
    expect(r.headers["grpc-encoding"]).toBeUndefined();
    expect(Buffer.from(fromBinary(EchoResponseSchema, m?.data ?? Buffer.alloc(0)).payload)).toEqual(
      payload,
    );
  });

  it("metadata over maxMetadataBytes fails that call alone with RESOURCE_EXHAUSTED", async () => {
    const slow = rawRequest(session, ECHO, frame(echoBytes({ delayMs: 200 })));
    const big = await rawRequest(session, ECHO, frame(echoBytes({})), {
      "x-big": "v".repeat(17 * 1024),
    });
    expect(big.status).toBe(Code.ResourceExhausted);
    expect((await slow).status).toBe(0);
  });

  it("messages over readMaxBytes (default 4 MiB) are RESOURCE_EXHAUSTED, streams included", async () => {
    const out = await grpcUnary(client, { payload: Buffer.alloc(4 * 1024 * 1024 + 10) });
    expect(out.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const stream = client.echoClientStream(new grpc.Metadata(), {}, () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => stream.on("status", resolve));
    stream.write({ payload: Buffer.alloc(10) });
    stream.write({ payload: Buffer.alloc(4 * 1024 * 1024 + 10) });
    stream.end();
    expect((await status).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((await grpcUnary(client, { payload: Buffer.alloc(1024 * 1024) })).status.code).toBe(
      grpc.status.OK,
    );
  });

  it("server streaming, client streaming and bidi from grpc-js", async () => {
    const ss = client.echoServerStream({ payload: Buffer.from("s"), repeat: 3 });
    const got: number[] = [];
    ss.on("data", (m: { index: number }) => got.push(m.index));
    const ssStatus = await new Promise<grpc.StatusObject>((r) => ss.on("status", r));
    expect(ssStatus.code).toBe(grpc.status.OK);
    expect(got).toEqual([0, 1, 2]);

    const cs = await new Promise<{ count: number; payload: Uint8Array }>((resolve, reject) => {
      const call = client.echoClientStream(new grpc.Metadata(), {}, (e, r) =>
        e ? reject(e) : resolve(r as { count: number; payload: Uint8Array }),
      );
      for (const p of ["a", "b", "c"]) call.write({ payload: Buffer.from(p) });
      call.end();
    });
    expect(cs.count).toBe(3);
    expect(Buffer.from(cs.payload).toString()).toBe("abc");

    const bidi = client.echoBidi();
    const answers: string[] = [];
    for (const p of ["x", "y"]) {
      const a = new Promise<string>((r) =>
        bidi.once("data", (m: { payload: Uint8Array }) => r(Buffer.from(m.payload).toString())),
      );
      bidi.write({ payload: Buffer.from(p) });
      answers.push(await a);
    }
    bidi.end();
    const bidiStatus = await new Promise<grpc.StatusObject>((r) => bidi.on("status", r));
    expect(bidiStatus.code).toBe(grpc.status.OK);
    expect(answers).toEqual(["x", "y"]);
  });

  it("a server stream failing after messages ends with its status in the trailers", async () => {
    const r = await rawRequest(
      session,
      "/test.v1.EchoService/EchoServerStream",
      frame(
        toBinary(
          (await import("../../gen/test/v1/echo_pb.js")).EchoServerStreamRequestSchema,
          create((await import("../../gen/test/v1/echo_pb.js")).EchoServerStreamRequestSchema, {
            repeat: 2,
            failCode: Code.DataLoss,
          }),
        ),
      ),
    );
    expect(messages(r.body)).toHaveLength(2);
    expect(r.headersEndStream).toBe(false);
    expect(r.trailers?.["grpc-status"]).toBe(String(Code.DataLoss));
  });

  it("cancelling a server stream reaches the handler", async () => {
    const cancelled = seen.cancelled;
    const ss = client.echoServerStream({ repeat: 1000, intervalMs: 20 });
    ss.on("error", () => {});
    await new Promise((r) => ss.once("data", r));
    ss.cancel();
    await expect.poll(() => seen.cancelled).toBeGreaterThan(cancelled);
    await expect.poll(() => server.inFlight).toBe(0);
  });

  describe("fallback path (connect-node) on the same port", () => {
    it("gRPC-Web and Connect clients are served, with deadlines clamped", async () => {
      for (const transport of [
        createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }),
        createConnectTransport({ baseUrl: url, httpVersion: "2" }),
        createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: false }),
      ]) {
        const c = createClient(EchoService, transport);
        const res = await c.echo({ payload: new Uint8Array([3]) });
        expect(res.servedBy).toBe("lean");
        const msgs: number[] = [];
        for await (const m of c.echoServerStream({ repeat: 2 })) msgs.push(m.index);
        expect(msgs).toEqual([0, 1]);
        await expect(
          c.echo({ failCode: Code.NotFound, failMessage: "nf: x" }),
        ).rejects.toMatchObject({ code: Code.NotFound, rawMessage: "nf: x" });
      }
    });

    it("gRPC-Web: huge grpc-timeout runs normally, an expired one never runs the handler", async () => {
      const web = async (timeout: string) =>
        rawRequest(session, ECHO, frame(echoBytes({ delayMs: 20 })), {
          "content-type": "application/grpc-web+proto",
          "grpc-timeout": timeout,
        });
      const huge = await web("99999999H");
      // gRPC-Web carries the status in a trailer frame (flag 0x80) in the body.
      const trailerFrame = huge.body.subarray(huge.body.lastIndexOf(0x80));
      expect(huge.headers[":status"]).toBe(200);
      expect(trailerFrame.toString()).toContain("grpc-status: 0");
      const runs = seen.runs;
      const expired = await web("1n");
      const all = `${JSON.stringify(expired.headers)}${expired.body.toString()}`;
      expect(all).toContain(String(Code.DeadlineExceeded));
      expect(seen.runs).toBe(runs);
    });
  });
});

describe("lean gRPC server with compression configured", () => {
  let server: MeshServer;
  let session: http2.ClientHttp2Session;
  afterEach(async () => {
    session?.close();
    await server?.close({ graceMs: 0 });
  });

  it("answers gzip to a client that accepts it, from compressMinBytes on", async () => {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, createCountingEcho().impl),
      logger: false,
      connect: { acceptCompression: [compressionGzip], compressMinBytes: 1024 },
    });
    session = await connect((await server.listen()).url);
    const big = await rawRequest(
      session,
      ECHO,
      frame(echoBytes({ payload: Buffer.alloc(4096, 1) })),
      {
        "grpc-accept-encoding": "gzip",
      },
    );
    expect(big.headers["grpc-encoding"]).toBe("gzip");
    const [m] = messages(big.body);
    expect(m?.compressed).toBe(true);
    const res = fromBinary(EchoResponseSchema, gunzipSync(m?.data ?? Buffer.alloc(0)));
    expect(Buffer.from(res.payload).equals(Buffer.alloc(4096, 1))).toBe(true);
    const small = await rawRequest(session, ECHO, frame(echoBytes({ payload: Buffer.alloc(10) })), {
      "grpc-accept-encoding": "gzip",
    });
    expect(messages(small.body)[0]?.compressed).toBe(false);
  });

  it("a grpc-timeout over maxTimeoutMs is INVALID_ARGUMENT", async () => {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, createCountingEcho().impl),
      logger: false,
      maxTimeoutMs: 1_000,
    });
    session = await connect((await server.listen()).url);
    const over = await rawRequest(session, ECHO, frame(echoBytes({})), { "grpc-timeout": "2S" });
    expect(over.status).toBe(Code.InvalidArgument);
    expect(over.message).toBe("timeout 2000ms must be <= 1000");
    const under = await rawRequest(session, ECHO, frame(echoBytes({})), { "grpc-timeout": "900m" });
    expect(under.status).toBe(0);
  });

  it("rejects bad options at construction", () => {
    const routes = () => {};
    expect(() => createMeshServer({ routes, readMaxBytes: 0 })).toThrow(RangeError);
    expect(() => createMeshServer({ routes, maxMetadataBytes: -1 })).toThrow(RangeError);
    expect(() => createMeshServer({ routes, http2: { maxConcurrentStreams: 0 } })).toThrow(
      /maxConcurrentStreams 0/,
    );
    expect(() => createMeshServer({ routes, http2: { maxHeaderListSize: 1.5 } })).toThrow(
      RangeError,
    );
  });
});

describe("lean gRPC server handler: handler context", () => {
  let server: MeshServer;
  let session: http2.ClientHttp2Session;
  const seen: { header: string | null; contentType: string | null; sameSignal: boolean }[] = [];
  // An interceptor that hands the handler a request header of its own.
  const swapping: Interceptor = (next) => (req) =>
    req.header.get("x-swap") === null
      ? next(req)
      : next({ ...req, header: new Headers({ "x-swapped": "yes" }) });
  const impl: Partial<ServiceImpl<typeof EchoService>> = {
    echo(req, ctx) {
      seen.push({
        header: ctx.requestHeader.get("x-swapped"),
        contentType: ctx.responseHeader.get("content-type"),
        sameSignal: ctx.signal === ctx.values.get(serverCallKey)?.signal,
      });
      if (req.failMessage === "trailer-only") ctx.responseTrailer.set("x-only-trailer", "t");
      return { payload: req.payload };
    },
  };

  beforeAll(async () => {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, impl),
      interceptors: [swapping],
      logger: false,
    });
    session = await connect((await server.listen()).url);
  });
  afterAll(async () => {
    session.close();
    await server.close({ graceMs: 0 });
  });

  it("a call nobody adds metadata to answers with the content type and grpc-status 0 only", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({ payload: new Uint8Array([3]) })));
    expect(r.headers["content-type"]).toBe("application/grpc+proto");
    expect(r.headers["grpc-accept-encoding"]).toBe("gzip,br");
    expect(
      Object.keys(r.headers)
        .filter((k) => !k.startsWith(":") && k !== "date")
        .sort(),
    ).toEqual(["content-type", "grpc-accept-encoding"]);
    expect(r.trailers?.["grpc-status"]).toBe("0");
    expect(Object.keys(r.trailers ?? {})).toEqual(["grpc-status"]);
    const [m] = messages(r.body);
    expect([...fromBinary(EchoResponseSchema, m?.data ?? new Uint8Array()).payload]).toEqual([3]);
    expect(seen.at(-1)).toEqual({
      header: null,
      contentType: "application/grpc+proto",
      sameSignal: true,
    });
  });

  it("a trailer set alone is sent; the response header stays the precomputed one", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({ failMessage: "trailer-only" })));
    expect(r.trailers?.["x-only-trailer"]).toBe("t");
    expect(r.trailers?.["grpc-status"]).toBe("0");
    expect(r.headers["content-type"]).toBe("application/grpc+proto");
  });

  it("the handler sees the request header an interceptor passed down", async () => {
    const r = await rawRequest(session, ECHO, frame(echoBytes({})), { "x-swap": "1" });
    expect(r.trailers?.["grpc-status"]).toBe("0");
    expect(seen.at(-1)?.header).toBe("yes");
  });
});
