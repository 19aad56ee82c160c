// The gRPC client transport against peers that misbehave on purpose (bare
// node:http2 servers, a TCP proxy that goes silent): limits while inflating
// and on the length prefix, broken responses, REFUSED_STREAM, GOAWAY under
// load, keepalive timeouts, idle close, lost connections.

import * as http2 from "node:http2";
import * as net from "node:net";
import * as zlib from "node:zlib";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { wasNotSent } from "../../src/call/not-sent.js";
import { isEndpointLocalFailure } from "../../src/call/transport-error.js";
import { rstCodeError } from "../../src/grpc/client-call.js";
import {
  createGrpcClientTransport,
  type GrpcClientTransport,
} from "../../src/grpc/client-transport.js";
import { encodeFrame } from "../../src/grpc/frame.js";
import { createMeshTransport } from "../../src/index.js";
import { EchoService } from "../support/grpc-js-echo.js";
import {
  echoUnary,
  GRPC_OK_HEADERS,
  type RawH2Server,
  readRequest,
  startProxy,
  startRawH2Server,
} from "./raw-h2-server.js";

const MiB = 1024 * 1024;

async function expectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("expected the call to fail");
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rawPeer(onStream: Parameters<typeof startRawH2Server>[0]): Promise<RawH2Server> {
  const s = await startRawH2Server(onStream);
  cleanups.push(() => s.close());
  return s;
}

function transportTo(address: string, options = {}): GrpcClientTransport {
  const t = createGrpcClientTransport(address, options);
  cleanups.push(() => t.close());
  return t;
}

function respondAfterRequest(
  stream: http2.ServerHttp2Stream,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | undefined,
  trailers: http2.OutgoingHttpHeaders | undefined,
): void {
  void readRequest(stream).then(() => {
    if (stream.destroyed) return;
    stream.respond(headers, {
      waitForTrailers: trailers !== undefined,
      endStream: body === undefined && trailers === undefined,
    });
    if (trailers !== undefined) stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    if (body !== undefined || trailers !== undefined) stream.end(body);
  });
}

describe("response limits", () => {
  it("a gzip bomb is stopped at readMaxBytes with RESOURCE_EXHAUSTED, not inflated", async () => {
    // 64 gzip members of 16 MiB of zeros: ~1 GiB inflated from ~1 MiB.
    const member = zlib.gzipSync(Buffer.alloc(16 * MiB));
    const bomb = Buffer.concat(Array.from({ length: 64 }, () => member));
    expect(bomb.byteLength).toBeLessThan(2 * MiB);
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        { ...GRPC_OK_HEADERS, "grpc-encoding": "gzip" },
        encodeFrame(bomb, true),
        { "grpc-status": "0" },
      ),
    );
    const client = createClient(EchoService, transportTo(peer.address));
    const before = process.memoryUsage().rss;
    const err = await expectError(client.echo({}));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain(String(4 * MiB));
    // Inflating it all would take a GiB; the bounded inflate stops near 4 MiB.
    expect(process.memoryUsage().rss - before).toBeLessThan(512 * MiB);
  });

  it("a length prefix over the limit fails at once, without waiting for the body", async () => {
    const peer = await rawPeer((stream) => {
      void readRequest(stream).then(() => {
        stream.respond(GRPC_OK_HEADERS);
        // Announce 16 MiB and send 10 bytes of it, then stall.
        const prefix = Buffer.from([0, 0x01, 0, 0, 0]);
        stream.write(Buffer.concat([prefix, Buffer.alloc(10)]));
      });
    });
    const client = createClient(EchoService, transportTo(peer.address));
    const err = await expectError(client.echo({}));
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toContain("16777216");
    expect(err.rawMessage).toContain("4194304");
  });

  it("a streamed message over the limit fails the stream with RESOURCE_EXHAUSTED", async () => {
    const peer = await rawPeer((stream) => {
      stream.respond(GRPC_OK_HEADERS, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.write(encodeFrame(new Uint8Array([0x10, 1]), false));
      stream.end(encodeFrame(new Uint8Array(2048), false));
    });
    const client = createClient(EchoService, transportTo(peer.address, { readMaxBytes: 1024 }));
    const seen: number[] = [];
    const err = await expectError(
      (async () => {
        for await (const m of client.echoServerStream({})) seen.push(m.index);
      })(),
    );
    expect(seen).toEqual([1]);
    expect(err.code).toBe(Code.ResourceExhausted);
  });

  it("a corrupt compressed message is INTERNAL", async () => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        { ...GRPC_OK_HEADERS, "grpc-encoding": "gzip" },
        encodeFrame(new Uint8Array([0x1f, 0x8b, 8, 0, 9, 9, 9, 9, 9, 9]), true),
        { "grpc-status": "0" },
      ),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Internal);
  });

  it("an unknown response encoding is INTERNAL naming it", async () => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        { ...GRPC_OK_HEADERS, "grpc-encoding": "snappy" },
        encodeFrame(new Uint8Array([1]), true),
        { "grpc-status": "0" },
      ),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain("snappy");
  });
});

describe("broken responses", () => {
  it.each([
    [503, Code.Unavailable],
    [404, Code.Unimplemented],
    [401, Code.Unauthenticated],
    [500, Code.Unknown],
  ])("HTTP %i without grpc-status is %s", async (status, code) => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        { ":status": status, "content-type": "text/plain" },
        Buffer.from("no"),
        undefined,
      ),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(code);
    expect(err.rawMessage).toBe(`HTTP ${status}`);
  });

  it("a response that ends without trailers is INTERNAL missing status", async () => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        GRPC_OK_HEADERS,
        encodeFrame(new Uint8Array(0), false),
        undefined,
      ),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain("missing status");
  });

  it("a Trailers-Only error keeps code, percent-decoded message and headers", async () => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(
        stream,
        { ...GRPC_OK_HEADERS, "grpc-status": "5", "grpc-message": "not: here %C3%BC", "x-k": "v" },
        undefined,
        undefined,
      ),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.NotFound);
    expect(err.rawMessage).toBe("not: here ü");
    expect(err.metadata.get("x-k")).toBe("v");
  });

  it("an invalid grpc-status is INTERNAL quoting it", async () => {
    const peer = await rawPeer((stream) =>
      respondAfterRequest(stream, GRPC_OK_HEADERS, encodeFrame(new Uint8Array(0), false), {
        "grpc-status": "99",
      }),
    );
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Internal);
    expect(err.rawMessage).toContain("99");
  });

  it.each([
    [http2.constants.NGHTTP2_NO_ERROR, undefined],
    [http2.constants.NGHTTP2_PROTOCOL_ERROR, Code.Internal],
    [http2.constants.NGHTTP2_INTERNAL_ERROR, Code.Internal],
    [http2.constants.NGHTTP2_FLOW_CONTROL_ERROR, Code.Internal],
    [http2.constants.NGHTTP2_STREAM_CLOSED, undefined],
    [http2.constants.NGHTTP2_REFUSED_STREAM, Code.Unavailable],
    [http2.constants.NGHTTP2_CANCEL, Code.Canceled],
    [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, Code.ResourceExhausted],
    [http2.constants.NGHTTP2_INADEQUATE_SECURITY, Code.PermissionDenied],
    [http2.constants.NGHTTP2_HTTP_1_1_REQUIRED, Code.PermissionDenied],
  ])("RST_STREAM code %i maps to %s (gRPC PROTOCOL-HTTP2 errors table)", (rst, code) => {
    const err = rstCodeError(rst);
    expect(err?.code).toBe(code);
    if (err !== undefined) expect(err.rawMessage).toContain(`0x${rst.toString(16)}`);
  });
});

describe("connection failures feed transparent retries", () => {
  it("REFUSED_STREAM is UNAVAILABLE and provably not sent", async () => {
    const peer = await rawPeer((stream) => stream.close(http2.constants.NGHTTP2_REFUSED_STREAM));
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Unavailable);
    expect(wasNotSent(err)).toBe(true);
  });

  it("a refused connection is UNAVAILABLE, not sent, and the state says error", async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const t = transportTo(`127.0.0.1:${port}`);
    expect(t.state()).toBe("closed");
    const err = await expectError(createClient(EchoService, t).echo({}));
    expect(err.code).toBe(Code.Unavailable);
    expect(wasNotSent(err)).toBe(true);
    expect(t.state()).toBe("error");
  });

  it("a connection the server drops mid-call is UNAVAILABLE, an endpoint-local failure", async () => {
    const peer = await rawPeer((stream, _h, session) => {
      stream.respond(GRPC_OK_HEADERS);
      setImmediate(() => session.destroy());
    });
    const err = await expectError(createClient(EchoService, transportTo(peer.address)).echo({}));
    expect(err.code).toBe(Code.Unavailable);
    expect(isEndpointLocalFailure(err)).toBe(true);
    expect(wasNotSent(err)).toBe(false);
  });

  it("GOAWAY mid-load: the mesh moves new calls to a new session and none fails", async () => {
    let streams = 0;
    const peer = await rawPeer((stream, _h, session) => {
      streams++;
      void echoUnary(stream);
      // Every 20th stream, tell the client to go away once the current ones finish.
      if (streams % 20 === 0) {
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id ?? 0);
        setTimeout(() => session.close(), 50).unref();
      }
    });
    const mesh = createMeshTransport({ target: peer.address, logger: false });
    cleanups.push(() => mesh.close());
    const client = createClient(EchoService, mesh);
    let ok = 0;
    for (let wave = 0; wave < 10; wave++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => client.echo({ payload: new Uint8Array([wave, i]) })),
      );
      ok += results.filter((r, i) => r.payload[0] === wave && r.payload[1] === i).length;
    }
    expect(ok).toBe(100);
    expect(peer.sessions).toBeGreaterThan(1);
  });

  it("a peer that stops answering PINGs is closed after pingTimeoutMs: UNAVAILABLE", async () => {
    const peer = await rawPeer(() => {
      // Never answer: the call stays open until the keepalive gives up.
    });
    const proxy = await startProxy(peer.address);
    cleanups.push(() => proxy.close());
    const t = transportTo(proxy.address, { pingIntervalMs: 50, pingTimeoutMs: 200 });
    const client = createClient(EchoService, t);
    const p = client.echo({});
    await expect.poll(() => t.state()).toBe("open");
    proxy.silence();
    const err = await expectError(p);
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("PING");
    expect(isEndpointLocalFailure(err)).toBe(true);
  });

  it("an idle connection closes after idleConnectionTimeoutMs and reconnects on the next call", async () => {
    const peer = await rawPeer((stream) => void echoUnary(stream));
    const t = transportTo(peer.address, { idleConnectionTimeoutMs: 100 });
    const client = createClient(EchoService, t);
    await client.echo({});
    await expect.poll(() => t.state(), { timeout: 5_000 }).toBe("closed");
    await client.echo({});
    expect(peer.sessions).toBe(2);
  });
});

describe("connection establishment", () => {
  it("a TLS peer that never completes the handshake fails after connectTimeoutMs: UNAVAILABLE", async () => {
    const accepted = new Set<net.Socket>();
    // Accept the TCP connection, never speak TLS.
    const silent = net.createServer((socket) => accepted.add(socket));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const socket of accepted) socket.destroy();
          silent.close(() => r());
        }),
    );
    const port = (silent.address() as net.AddressInfo).port;
    const t = transportTo(`127.0.0.1:${port}`, { tls: {}, connectTimeoutMs: 200 });
    const p = createClient(EchoService, t).echo({});
    expect(t.state()).toBe("connecting");
    const err = await expectError(p);
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toContain("timed out after 200ms");
  });
});

describe("options", () => {
  it.each([
    [{ readMaxBytes: 0 }, "readMaxBytes 0"],
    [{ writeMaxBytes: 1.5 }, "writeMaxBytes 1.5"],
    [{ pingIntervalMs: -1 }, "pingIntervalMs -1"],
    [{ connectTimeoutMs: 0 }, "connectTimeoutMs 0"],
  ])("rejects %o at construction", (options, quoted) => {
    expect(() => createGrpcClientTransport("127.0.0.1:1", options)).toThrow(RangeError);
    expect(() => createGrpcClientTransport("127.0.0.1:1", options)).toThrow(quoted);
  });
});
