// The gRPC client transport (src/grpc) used directly under Connect's
// createClient, against a real grpc-js server and a real mesh server: all four
// method kinds, every status code, details, metadata both ways, deadlines,
// cancellation, gzip, limits and flow control.

import { randomBytes } from "node:crypto";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  type CallOptions,
  type Client,
  Code,
  ConnectError,
  createClient,
  decodeBinaryHeader,
  encodeBinaryHeader,
} from "@connectrpc/connect";
import { compressionGzip } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createGrpcClientTransport,
  type GrpcClientTransport,
} from "../../src/grpc/client-transport.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";
import {
  CallLog,
  CODES,
  createGrpcJsEchoImpl,
  createMeshEchoImpl,
  createPushable,
  EchoResponseSchema,
  EchoService,
  echoServiceDefinition,
  NO_DETAILS_PREFIX,
  newTestId,
  SEEN_HEX_PREFIX,
  TEST_ID_HEADER,
} from "../support/grpc-js-echo.js";

const MiB = 1024 * 1024;

interface Peer {
  readonly address: string;
  readonly log: CallLog;
  readonly servedBy: string;
  close(): Promise<void>;
}

async function startGrpcJsPeer(): Promise<Peer> {
  const log = new CallLog();
  // Limits raised so the client's own limits are what the tests meet.
  const server = new grpc.Server({
    "grpc.max_receive_message_length": 64 * MiB,
    "grpc.max_send_message_length": 64 * MiB,
  });
  server.addService(echoServiceDefinition, createGrpcJsEchoImpl(log, "grpc-js"));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    address: `127.0.0.1:${port}`,
    log,
    servedBy: "grpc-js",
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 500).unref();
      }),
  };
}

async function startMeshPeer(): Promise<Peer> {
  const log = new CallLog();
  const server: MeshServer = createMeshServer({
    routes: (router) => router.service(EchoService, createMeshEchoImpl(log, "mesh")),
    logger: false,
    connect: { readMaxBytes: 64 * MiB, writeMaxBytes: 64 * MiB },
  });
  const { address } = await server.listen({ host: "127.0.0.1", port: 0 });
  return { address, log, servedBy: "mesh", close: () => server.close({ graceMs: 0 }) };
}

async function expectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("expected the call to fail");
}

function capture(extra: CallOptions = {}) {
  const got: { header?: Headers; trailer?: Headers } = {};
  const options: CallOptions = {
    ...extra,
    onHeader: (h) => {
      got.header = h;
    },
    onTrailer: (t) => {
      got.trailer = t;
    },
  };
  return { got, options };
}

// Runs before any other call in this file: Node prints a deprecation warning
// once per process, so only the first request can show it.
it("makes calls without a process warning (Node 22 deprecates HTTP/2 priority signaling, DEP0194)", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on("warning", onWarning);
  const peer = await startMeshPeer();
  const transport = createGrpcClientTransport(peer.address);
  try {
    const client = createClient(EchoService, transport);
    const res = await client.echo({ payload: new Uint8Array([1]) });
    expect([...res.payload]).toEqual([1]);
    // Warnings are emitted on a later tick.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(warnings).toEqual([]);
  } finally {
    process.off("warning", onWarning);
    transport.close();
    await peer.close();
  }
});

describe.each([
  ["grpc-js", startGrpcJsPeer],
  ["mesh", startMeshPeer],
] as const)("gRPC client transport → %s server", (name, start) => {
  let peer: Peer;
  let transport: GrpcClientTransport;
  let client: Client<typeof EchoService>;

  beforeAll(async () => {
    peer = await start();
    transport = createGrpcClientTransport(peer.address);
    client = createClient(EchoService, transport);
  });

  afterAll(async () => {
    transport?.close();
    await peer?.close();
  });

  describe("method kinds", () => {
    it("unary", async () => {
      expect(transport.state()).not.toBe("error");
      const res = await client.echo({ payload: new Uint8Array([1, 2, 3]) });
      expect([...res.payload]).toEqual([1, 2, 3]);
      expect(res.servedBy).toBe(peer.servedBy);
      expect(res.timeoutMs).toBe(0);
      expect(["idle", "open"]).toContain(transport.state());
    });

    it("server streaming, in order", async () => {
      const indexes: number[] = [];
      for await (const m of client.echoServerStream({ payload: new Uint8Array([7]), repeat: 5 })) {
        expect([...m.payload]).toEqual([7]);
        indexes.push(m.index);
      }
      expect(indexes).toEqual([0, 1, 2, 3, 4]);
    });

    it("client streaming", async () => {
      async function* requests() {
        yield { payload: new Uint8Array([1, 2]) };
        yield { payload: new Uint8Array([3]) };
        yield { payload: new Uint8Array([4, 5, 6]) };
      }
      const res = await client.echoClientStream(requests());
      expect(res.count).toBe(3);
      expect([...res.payload]).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it("bidi ping-pong (full duplex)", async () => {
      const input = createPushable<{ payload: Uint8Array }>();
      const responses = client.echoBidi(input)[Symbol.asyncIterator]();
      const answers: number[] = [];
      for (let i = 0; i < 4; i++) {
        input.push({ payload: new Uint8Array([10 + i]) });
        const r = await responses.next();
        expect(r.done).toBe(false);
        if (r.done !== true) answers.push(r.value.payload[0] ?? -1);
      }
      input.end();
      expect((await responses.next()).done).toBe(true);
      expect(answers).toEqual([10, 11, 12, 13]);
    });

    it("100 concurrent unary calls share one connection", async () => {
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => client.echo({ payload: new Uint8Array([i]) })),
      );
      expect(results.map((r) => r.payload[0])).toEqual(Array.from({ length: 100 }, (_, i) => i));
    });
  });

  describe("status codes", () => {
    it.each(CODES.map((c) => [c.name, c.code] as const))(
      "%s keeps code, exact message and details",
      async (name, code) => {
        const message = `failure ${name}: ünïcode ✓ 100% a/b, c?d#e 🎉`;
        const err = await expectError(
          client.echo({ payload: new Uint8Array([code]), failCode: code, failMessage: message }),
        );
        expect(err.code).toBe(code);
        expect(err.rawMessage).toBe(message);
        expect(err.details).toHaveLength(2);
        const [echoed] = err.findDetails(EchoResponseSchema);
        expect(echoed?.servedBy).toBe(peer.servedBy);
        expect([...(echoed?.payload ?? [])]).toEqual([code]);
        expect(err.findDetails(StringValueSchema)[0]?.value).toBe(message);
      },
    );

    it("a message without details is decoded exactly from grpc-message", async () => {
      const message = `${NO_DETAILS_PREFIX} a: b/c, 100% ünïcode\tend`;
      const err = await expectError(client.echo({ failCode: Code.Aborted, failMessage: message }));
      expect(err.code).toBe(Code.Aborted);
      expect(err.rawMessage).toBe(message);
      expect(err.details).toHaveLength(0);
    });

    it("a server-streaming error after messages keeps the messages and the status", async () => {
      const seen: number[] = [];
      const err = await expectError(
        (async () => {
          for await (const m of client.echoServerStream({
            payload: new Uint8Array([4]),
            repeat: 2,
            failCode: Code.ResourceExhausted,
          })) {
            seen.push(m.index);
          }
        })(),
      );
      expect(seen).toEqual([0, 1]);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("requested failure after stream");
    });
  });

  describe("metadata", () => {
    it("text and -bin metadata go out and come back as headers and trailers", async () => {
      const bin = new Uint8Array([0, 1, 2, 254, 255]);
      const { got, options } = capture({
        headers: { "x-echo-text": "hello world", "x-echo-data-bin": encodeBinaryHeader(bin) },
      });
      await client.echo({}, options);
      expect(got.header?.get("x-echo-text")).toBe("hello world");
      expect(got.trailer?.get("x-echo-text")).toBe("hello world");
      expect(got.header?.get(`${SEEN_HEX_PREFIX}x-echo-data`)).toBe("000102feff");
      // grpc-js drops base64 padding; the bytes are what count.
      expect([...decodeBinaryHeader(got.trailer?.get("x-echo-data-bin") ?? "")]).toEqual([...bin]);
    });

    it("an error's metadata holds response headers and trailers", async () => {
      const err = await expectError(
        client.echo(
          { failCode: Code.NotFound, failMessage: "nope" },
          { headers: { "x-echo-k": "v" } },
        ),
      );
      expect(err.metadata.get("x-echo-k")).toContain("v");
      expect(err.metadata.get("grpc-status")).toBe(String(Code.NotFound));
    });
  });

  describe("deadlines and cancellation", () => {
    it("timeoutMs is sent as grpc-timeout and enforced", async () => {
      const ok = await client.echo({}, { timeoutMs: 5_000 });
      expect(ok.timeoutMs).toBeGreaterThan(0);
      expect(ok.timeoutMs).toBeLessThanOrEqual(5_000);
      const id = newTestId("deadline");
      const err = await expectError(
        client.echo({ delayMs: 5_000 }, { timeoutMs: 100, headers: { [TEST_ID_HEADER]: id } }),
      );
      expect(err.code).toBe(Code.DeadlineExceeded);
      const seen = await peer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined, 5_000);
      expect(seen.cancelCode).toBe(Code.DeadlineExceeded);
    });

    it("aborting the signal fails the call with CANCELED and the server sees the cancel", async () => {
      const id = newTestId("cancel");
      const ac = new AbortController();
      const p = client.echo(
        { delayMs: 10_000 },
        { signal: ac.signal, headers: { [TEST_ID_HEADER]: id } },
      );
      await peer.log.waitFor(id, () => true, 5_000);
      ac.abort();
      const err = await expectError(p);
      expect(err.code).toBe(Code.Canceled);
      const seen = await peer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined, 5_000);
      expect(seen.cancelCode).toBe(Code.Canceled);
    });

    it("breaking out of a server stream cancels it on the server", async () => {
      const id = newTestId("break");
      let n = 0;
      for await (const _ of client.echoServerStream(
        { repeat: 1000, intervalMs: 20 },
        { headers: { [TEST_ID_HEADER]: id } },
      )) {
        if (++n === 2) break;
      }
      expect(n).toBe(2);
      await peer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined, 5_000);
    });
  });

  // grpc-js serves every application/grpc* body with its binary deserializer.
  it.runIf(name === "mesh")("JSON messages (useBinaryFormat: false) round-trip", async () => {
    const json = createGrpcClientTransport(peer.address, { useBinaryFormat: false });
    try {
      const res = await createClient(EchoService, json).echo({ payload: new Uint8Array([5, 6]) });
      expect([...res.payload]).toEqual([5, 6]);
    } finally {
      json.close();
    }
  });

  describe("compression", () => {
    it("gzip requests and responses round-trip", async () => {
      const gz = createGrpcClientTransport(peer.address, {
        sendCompression: compressionGzip,
        acceptCompression: [compressionGzip],
      });
      try {
        const payload = Buffer.concat([Buffer.alloc(60 * 1024, "abc"), randomBytes(4 * 1024)]);
        const res = await createClient(EchoService, gz).echo({ payload });
        expect(Buffer.from(res.payload).equals(payload)).toBe(true);
      } finally {
        gz.close();
      }
    });
  });

  describe("limits and flow control", () => {
    it("a 16 MiB response is RESOURCE_EXHAUSTED at the default limit; the connection serves the next call", async () => {
      // The mesh server (connect-node on node:http2 defaults) resets a single
      // 16 MiB write with ENHANCE_YOUR_CALM (maxSessionMemory 10 MB) before
      // sending a byte, so it gets a 6 MiB response: still over the limit.
      const parts4MiB = peer.servedBy === "mesh" ? 1 : 4;
      async function* parts() {
        for (let i = 0; i < parts4MiB; i++) yield { payload: new Uint8Array(4 * MiB - 64) };
        yield { payload: new Uint8Array(2 * MiB) };
      }
      const big = createGrpcClientTransport(peer.address, { writeMaxBytes: 8 * MiB });
      try {
        const c = createClient(EchoService, big);
        const err = await expectError(c.echoClientStream(parts()));
        expect(err.code).toBe(Code.ResourceExhausted);
        expect(err.rawMessage).toContain(String(4 * MiB));
        const next = await c.echo({ payload: new Uint8Array([9]) });
        expect([...next.payload]).toEqual([9]);
      } finally {
        big.close();
      }
    });

    it("a request over writeMaxBytes is RESOURCE_EXHAUSTED before it is sent", async () => {
      const id = newTestId("toolarge");
      const err = await expectError(
        client.echo(
          { payload: new Uint8Array(4 * MiB + 1) },
          { headers: { [TEST_ID_HEADER]: id } },
        ),
      );
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toContain(String(4 * MiB));
      async function* one() {
        yield { payload: new Uint8Array(4 * MiB + 1) };
      }
      const streamErr = await expectError(client.echoClientStream(one()));
      expect(streamErr.code).toBe(Code.ResourceExhausted);
      expect(peer.log.records.has(id)).toBe(false);
    });

    it("8 MiB messages both ways with raised limits", async () => {
      const big = createGrpcClientTransport(peer.address, {
        readMaxBytes: 16 * MiB,
        writeMaxBytes: 16 * MiB,
      });
      try {
        const payload = randomBytes(8 * MiB);
        const res = await createClient(EchoService, big).echo({ payload });
        expect(Buffer.from(res.payload).equals(payload)).toBe(true);
      } finally {
        big.close();
      }
    });

    it("many streamed messages, read slowly, arrive complete and in order", async () => {
      const payload = randomBytes(64 * 1024);
      let n = 0;
      for await (const m of client.echoServerStream({ payload, repeat: 300 })) {
        expect(m.index).toBe(n);
        expect(m.payload.byteLength).toBe(payload.byteLength);
        n++;
        // A slow reader: the transport must push back instead of buffering all.
        if (n % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      expect(n).toBe(300);
    });

    it("2000 bidi messages in flight at once", async () => {
      async function* many() {
        for (let i = 0; i < 2000; i++) yield { payload: new Uint8Array([i & 0xff]) };
      }
      let n = 0;
      for await (const m of client.echoBidi(many())) {
        expect(m.index).toBe(n);
        n++;
      }
      expect(n).toBe(2000);
    });
  });
});
