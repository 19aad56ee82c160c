// The lean gRPC handler's lazy call signal: no AbortController (nor abort
// listener) for a call nobody asks for its signal, yet cancellation,
// deadlines and shutdown still reach handlers that read it late, the call
// line and nested mesh calls.

import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import { EchoRequestSchema, EchoService } from "../../gen/test/v1/echo_pb.js";
import { createMeshServer, createMeshTransport, type MeshServer } from "../../src/index.js";
import { captureLogs } from "../observability/log-capture.js";
import { createEchoImpl } from "../support/echo-service.js";
import { connect, frame, rawRequest } from "./server-raw-h2.js";

const ECHO = "/test.v1.EchoService/Echo";
const echoBytes = (init: Parameters<typeof create<typeof EchoRequestSchema>>[1] = {}) =>
  toBinary(EchoRequestSchema, create(EchoRequestSchema, init));

/** deferred is a promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** LateRead is what a handler saw when it first read ctx.signal, after the test let it. */
interface LateRead {
  readonly aborted: boolean;
  readonly code: Code | undefined;
}

/**
 * lateReader is an Echo handler that ignores its signal until the test
 * releases it, then reads ctx.signal once and records what it says.
 */
function lateReader() {
  const started = deferred();
  const release = deferred();
  const reads: LateRead[] = [];
  const impl: Partial<ServiceImpl<typeof EchoService>> = {
    async echo(_req, ctx) {
      started.resolve();
      await release.promise;
      const signal = ctx.signal;
      reads.push({
        aborted: signal.aborted,
        code: signal.aborted ? ConnectError.from(signal.reason).code : undefined,
      });
      return {};
    },
  };
  return { impl, started, release, reads };
}

describe("lean gRPC server: the lazy call signal", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    vi.restoreAllMocks();
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function serve(
    impl: Partial<ServiceImpl<typeof EchoService>>,
    options: { logger?: ReturnType<typeof captureLogs>["logger"] } = {},
  ): Promise<{ server: MeshServer; url: string; address: string }> {
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, { ...createEchoImpl(), ...impl }),
      logger: options.logger ?? false,
    });
    const bound = await server.listen();
    cleanups.push(() => server.close({ graceMs: 0 }));
    return { server, url: bound.url, address: bound.address };
  }

  async function session(url: string): Promise<http2.ClientHttp2Session> {
    const s = await connect(url);
    cleanups.push(() => {
      s.destroy();
    });
    return s;
  }

  it("a successful call whose handler never reads ctx.signal builds no AbortController and adds no abort listener", async () => {
    // Every default on (idempotency, observe, call counters): the success
    // path itself must not read the signal.
    const { url } = await serve({ echo: (req) => ({ payload: req.payload }) });
    const s = await session(url);
    const warm = await rawRequest(s, ECHO, frame(echoBytes()));
    expect(warm.trailers?.["grpc-status"]).toBe("0");
    let controllers = 0;
    const Real = globalThis.AbortController;
    vi.stubGlobal(
      "AbortController",
      class extends Real {
        constructor() {
          super();
          controllers++;
        }
      },
    );
    const listen = vi.spyOn(EventTarget.prototype, "addEventListener");
    for (const timeout of [undefined, "10S"]) {
      const r = await rawRequest(
        s,
        ECHO,
        frame(echoBytes({ payload: new Uint8Array([1]) })),
        timeout === undefined ? {} : { "grpc-timeout": timeout },
      );
      expect(r.trailers?.["grpc-status"]).toBe("0");
    }
    vi.unstubAllGlobals();
    expect(controllers).toBe(0);
    expect(listen.mock.calls.filter(([type]) => type === "abort")).toEqual([]);
  });

  it("reading ctx.signal after the client cancelled returns a signal aborted with CANCELED", async () => {
    const h = lateReader();
    const { server, url } = await serve(h.impl);
    const s = await session(url);
    const stream = s.request({
      ":method": "POST",
      ":path": ECHO,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(frame(echoBytes()));
    await h.started.promise;
    expect(server.inFlight).toBe(1);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    // The call has ended on the server (its abort ran) before the handler looks.
    await expect.poll(() => server.inFlight).toBe(0);
    h.release.resolve();
    await expect.poll(() => h.reads).toEqual([{ aborted: true, code: Code.Canceled }]);
  });

  it("a handler ignoring its signal past the deadline: DEADLINE_EXCEEDED on the wire and in the call line, and a late read is aborted with it", async () => {
    const logs = captureLogs("info");
    const h = lateReader();
    const { url } = await serve(h.impl, { logger: logs.logger });
    const s = await session(url);
    const r = await rawRequest(s, ECHO, frame(echoBytes()), { "grpc-timeout": "100m" });
    expect(r.status).toBe(Code.DeadlineExceeded);
    await expect
      .poll(() => logs.finished("server").map((l) => l["grpc.code"]))
      .toEqual(["DeadlineExceeded"]);
    h.release.resolve();
    await expect.poll(() => h.reads).toEqual([{ aborted: true, code: Code.DeadlineExceeded }]);
  });

  it("server shutdown cancels a live call whose handler never read its signal, with UNAVAILABLE", async () => {
    const logs = captureLogs("info");
    const h = lateReader();
    const { server, url } = await serve(h.impl, { logger: logs.logger });
    const s = await session(url);
    const pending = rawRequest(s, ECHO, frame(echoBytes()));
    await h.started.promise;
    const closed = server.close({ graceMs: 0 });
    const r = await pending;
    expect(r.status).toBe(Code.Unavailable);
    await closed;
    expect(logs.finished("server").map((l) => l["grpc.code"])).toEqual(["Unavailable"]);
    h.release.resolve();
    await expect.poll(() => h.reads).toEqual([{ aborted: true, code: Code.Unavailable }]);
  });

  it("a mesh call made after an await in a handler that never read its signal is cancelled with the incoming call", async () => {
    const backendStarted = deferred();
    const backendCancelled = deferred();
    const backend = await serve({
      async echo(_req, ctx) {
        backendStarted.resolve();
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        backendCancelled.resolve();
        return {};
      },
    });
    const toBackend = createMeshTransport({ target: backend.address, logger: false });
    cleanups.push(() => toBackend.close());
    const backendClient = createClient(EchoService, toBackend);
    const front = await serve({
      async echo(req) {
        await new Promise((resolve) => setImmediate(resolve));
        return backendClient.echo(req);
      },
    });
    const s = await session(front.url);
    const stream = s.request({
      ":method": "POST",
      ":path": ECHO,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(frame(echoBytes()));
    await backendStarted.promise;
    stream.close(http2.constants.NGHTTP2_CANCEL);
    // Resolves only if the backend handler saw its signal abort.
    await backendCancelled.promise;
  });
});
