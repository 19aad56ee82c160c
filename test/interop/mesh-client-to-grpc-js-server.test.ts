// Interop: a real mesh transport (Connect client over createMeshTransport)
// calling a real @grpc/grpc-js server (service definition built from
// protobuf-es descriptors, no proto-loader) over h2c.

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
import { createMeshTransport, type MeshTransport } from "../../src/index.js";
import {
  CODES,
  createPushable,
  EchoResponseSchema,
  EchoService,
  type GrpcJsEchoServer,
  NO_DETAILS_PREFIX,
  newTestId,
  SEEN_HEX_PREFIX,
  startGrpcJsEchoServer,
  TEST_ID_HEADER,
} from "../support/grpc-js-echo.js";

const SERVED_BY = "grpc-js-under-test";

/** expectError awaits `p` and returns its ConnectError, failing the test if it resolves. */
async function expectError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ConnectError);
    return e as ConnectError;
  }
  throw new Error("expected the call to fail");
}

/** headersAndTrailers returns call options capturing response headers and trailers. */
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

describe("interop: mesh client → grpc-js server", () => {
  let grpcServer: GrpcJsEchoServer;
  let transport: MeshTransport;
  let client: Client<typeof EchoService>;

  beforeAll(async () => {
    grpcServer = await startGrpcJsEchoServer(SERVED_BY);
    transport = createMeshTransport({ target: grpcServer.address });
    client = createClient(EchoService, transport);
  });

  afterAll(async () => {
    await transport?.close();
    await grpcServer?.close();
  });

  describe("call shapes", () => {
    it("unary echo returns the payload and served_by", async () => {
      const res = await client.echo({ payload: new Uint8Array([1, 2, 3]) });
      expect([...res.payload]).toEqual([1, 2, 3]);
      expect(res.servedBy).toBe(SERVED_BY);
      // No deadline set: the handler sees none.
      expect(res.timeoutMs).toBe(0);
    });

    it("server streaming delivers every message in order, then OK", async () => {
      const indexes: number[] = [];
      for await (const m of client.echoServerStream({ payload: new Uint8Array([7]), repeat: 5 })) {
        expect([...m.payload]).toEqual([7]);
        indexes.push(m.index);
      }
      expect(indexes).toEqual([0, 1, 2, 3, 4]);
    });

    it("server streaming error after messages keeps messages, code, message and details", async () => {
      const indexes: number[] = [];
      const err = await expectError(
        (async () => {
          for await (const m of client.echoServerStream({
            payload: new Uint8Array([4]),
            repeat: 2,
            failCode: Code.ResourceExhausted,
          })) {
            indexes.push(m.index);
          }
        })(),
      );
      expect(indexes).toEqual([0, 1]);
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("requested failure after stream");
      const [detail] = err.findDetails(EchoResponseSchema);
      expect([...(detail?.payload ?? [])]).toEqual([4]);
      expect(detail?.servedBy).toBe(SERVED_BY);
    });

    it("client streaming joins all request messages", async () => {
      async function* requests() {
        yield { payload: new Uint8Array([1, 2]) };
        yield { payload: new Uint8Array([3]) };
        yield { payload: new Uint8Array([4, 5, 6]) };
      }
      const res = await client.echoClientStream(requests());
      expect(res.count).toBe(3);
      expect([...res.payload]).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it("bidi streaming answers each message before the next is sent (full duplex)", async () => {
      const input = createPushable<{ payload: Uint8Array }>();
      const responses = client.echoBidi(input)[Symbol.asyncIterator]();
      const answers: number[] = [];
      const indexes: number[] = [];
      // Ping-pong: send the next message only after the previous answer came back.
      for (let i = 0; i < 4; i++) {
        input.push({ payload: new Uint8Array([10 + i]) });
        const r = await responses.next();
        expect(r.done).toBe(false);
        if (r.done !== true) {
          answers.push(r.value.payload[0] ?? -1);
          indexes.push(r.value.index);
        }
      }
      input.end();
      expect((await responses.next()).done).toBe(true);
      expect(answers).toEqual([10, 11, 12, 13]);
      expect(indexes).toEqual([0, 1, 2, 3]);
    });
    it("64 KiB payloads round-trip with gzip-compressed requests", async () => {
      const payload = Buffer.concat([Buffer.alloc(60 * 1024, "abc"), randomBytes(4 * 1024)]);
      const gzipTransport = createMeshTransport({
        target: grpcServer.address,
        sendCompression: compressionGzip,
      });
      try {
        const res = await createClient(EchoService, gzipTransport).echo({ payload });
        expect(Buffer.from(res.payload).equals(payload)).toBe(true);
      } finally {
        await gzipTransport.close();
      }
    });
  });

  describe("errors", () => {
    const CODE_ROWS = CODES.map((c) => [c.name, c.code] as const);
    // grpc-js sends grpc-message with encodeURI and Connect decodes it with
    // decodeURIComponent, so messages arrive exactly in this direction. When
    // grpc-status-details-bin is present Connect takes code and message from
    // the google.rpc.Status in it rather than from grpc-status/grpc-message.
    it.each(CODE_ROWS)("unary error code %s keeps message and details", async (name, code) => {
      const message = `failure ${name}: ünïcode ✓ 100% a/b, c?d#e`;
      const err = await expectError(
        client.echo({ payload: new Uint8Array([code]), failCode: code, failMessage: message }),
      );
      expect(err.code).toBe(code);
      expect(Code[err.code]).toBe(
        // Connect's enum names are the UpperCamelCase of gRPC's names.
        name
          .toLowerCase()
          .split("_")
          .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
          .join("")
          .replace("Cancelled", "Canceled"),
      );
      expect(err.rawMessage).toBe(message);
      expect(err.details).toHaveLength(2);
      const [echoed] = err.findDetails(EchoResponseSchema);
      expect(echoed?.timeoutMs).toBe(code);
      expect(echoed?.servedBy).toBe(SERVED_BY);
      expect([...(echoed?.payload ?? [])]).toEqual([code]);
      expect(err.findDetails(StringValueSchema)[0]?.value).toBe(message);
    });

    it("error message without details is decoded exactly from grpc-message", async () => {
      const message = `${NO_DETAILS_PREFIX} a: b/c, d?e#f 100% ünïcode\tend`;
      const err = await expectError(client.echo({ failCode: Code.Aborted, failMessage: message }));
      expect(err.code).toBe(Code.Aborted);
      expect(err.rawMessage).toBe(message);
      expect(err.details).toHaveLength(0);
    });
  });

  describe("metadata", () => {
    it("request metadata reaches the handler and comes back as response headers and trailers", async () => {
      const headers = new Headers();
      headers.set("x-echo-text", "hello");
      headers.append("x-echo-multi", "a");
      headers.append("x-echo-multi", "b");
      headers.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
      headers.set("x-not-echoed", "nope");
      const { got, options } = capture({ headers });
      await client.echo({ payload: new Uint8Array([1]) }, options);
      expect(got.header?.get("x-echo-text")).toBe("hello");
      // Headers joins repeated values with ", " before they are sent.
      expect(got.header?.get("x-echo-multi")).toBe("a, b");
      expect(got.header?.has("x-not-echoed")).toBe(false);
      expect(got.trailer?.get("x-echo-text")).toBe("hello");
      expect(got.trailer?.get("x-echo-multi")).toBe("a, b");
      expect(got.trailer?.has("x-not-echoed")).toBe(false);
    });

    it("binary -bin metadata crosses both ways byte-exact", async () => {
      const one = new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
      const two = new Uint8Array([42]);
      const headers = new Headers();
      // Connect leaves -bin encoding to the caller: unpadded standard base64.
      headers.append("x-echo-blob-bin", encodeBinaryHeader(one));
      headers.append("x-echo-blob-bin", encodeBinaryHeader(two));
      const { got, options } = capture({ headers });
      await client.echo({}, options);
      // grpc-js decoded the joined header into the two original values...
      expect(got.header?.get(`${SEEN_HEX_PREFIX}x-echo-blob`)).toBe(
        `${Buffer.from(one).toString("hex")},${Buffer.from(two).toString("hex")}`,
      );
      // ...and its echoed values (padded base64, joined by ", ") decode back.
      for (const h of [got.header, got.trailer]) {
        const values = (h?.get("x-echo-blob-bin") ?? "")
          .split(",")
          .map((v) => [...decodeBinaryHeader(v.trim())]);
        expect(values).toEqual([[...one], [...two]]);
      }
    });

    it("server streaming sends response headers before messages and trailers after", async () => {
      const { got, options } = capture({ headers: { "x-echo-stream": "s1" } });
      let headerBeforeFirstMessage: string | null | undefined;
      for await (const _ of client.echoServerStream({ repeat: 2 }, options)) {
        headerBeforeFirstMessage ??= got.header?.get("x-echo-stream");
      }
      expect(headerBeforeFirstMessage).toBe("s1");
      expect(got.trailer?.get("x-echo-stream")).toBe("s1");
    });
  });

  describe("deadlines and cancellation", () => {
    it("the handler sees the remaining deadline: close to but not above the client's timeout", async () => {
      const res = await client.echo({}, { timeoutMs: 2_000 });
      expect(res.timeoutMs).toBeLessThanOrEqual(2_000);
      expect(res.timeoutMs).toBeGreaterThan(1_500);
    });

    it("deadline with a handler ignoring cancellation: both ends see DEADLINE_EXCEEDED at the deadline", async () => {
      const id = newTestId("deadline");
      const started = performance.now();
      const err = await expectError(
        client.echo(
          // The handler would answer after 3 s; the call must end at its 100 ms deadline.
          { delayMs: 3_000, ignoreCancel: true },
          { timeoutMs: 100, headers: { [TEST_ID_HEADER]: id } },
        ),
      );
      const elapsed = performance.now() - started;
      expect(err.code).toBe(Code.DeadlineExceeded);
      expect(elapsed).toBeGreaterThanOrEqual(95);
      // Generous on a busy host, far below the handler's 3 s.
      expect(elapsed).toBeLessThan(1_500);
      const seen = await grpcServer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      // grpc-js got the deadline from the mesh client's grpc-timeout...
      expect(seen.timeoutMs).toBeGreaterThan(50);
      expect(seen.timeoutMs).toBeLessThanOrEqual(100);
      // ...and ended the call at it. Race, not a bug: grpc-js's own timer sends
      // DEADLINE_EXCEEDED while the Connect client resets the stream at the same
      // moment (FACTS: with INTERNAL_ERROR); grpc-js tells the handler only
      // "cancelled", so which came first shows only in the timing.
      expect(seen.cancelledAfterMs).toBeLessThan(1_500);
      expect([grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]).toContain(seen.cancelCode);
    });

    it("client cancel (AbortController) of a unary call reaches the grpc-js handler", async () => {
      const id = newTestId("cancel");
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 100);
      const started = performance.now();
      const err = await expectError(
        client.echo(
          { delayMs: 5_000 },
          { signal: abort.signal, headers: { [TEST_ID_HEADER]: id } },
        ),
      );
      expect(err.code).toBe(Code.Canceled);
      expect(performance.now() - started).toBeLessThan(2_500);
      const seen = await grpcServer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      // Measured from the handler's start, which a busy host delays: no lower bound.
      expect(seen.cancelledAfterMs).toBeGreaterThanOrEqual(0);
      expect(seen.cancelledAfterMs).toBeLessThan(2_500);
      expect(seen.cancelCode).toBe(grpc.status.CANCELLED);
    });

    it("client cancel of a server stream reaches the grpc-js handler", async () => {
      const id = newTestId("cancel-stream");
      const abort = new AbortController();
      const err = await expectError(
        (async () => {
          for await (const _ of client.echoServerStream(
            { payload: new Uint8Array([1]), repeat: 1_000, intervalMs: 20 },
            { signal: abort.signal, headers: { [TEST_ID_HEADER]: id } },
          )) {
            abort.abort();
          }
        })(),
      );
      expect(err.code).toBe(Code.Canceled);
      const seen = await grpcServer.log.waitFor(id, (r) => r.cancelledAfterMs !== undefined);
      expect(seen.cancelCode).toBe(grpc.status.CANCELLED);
    });
  });
});
