// The server observe interceptor in its own slot, outermost, outside the
// deadline+scope interceptor, where createMeshServer installs it by default:
// the scope still carries the span and logger it put into the context values.

import { createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
  SERVER_INTERCEPTOR_ORDER,
} from "../../src/index.js";
import { traceContextKey } from "../../src/observability/context-keys.js";
import { currentLogger, currentTraceContext } from "../../src/observability/current-call.js";
import { createEchoImpl, EchoService, sleep } from "../support/echo-service.js";
import { rawGrpcCall } from "../support/raw-grpc.js";
import { captureLogs } from "./log-capture.js";

describe("server observe interceptor outside the call scope", () => {
  const logs = captureLogs();
  const base = createEchoImpl();
  const spansSeen: Array<string | undefined> = [];
  // userSaw: what a user interceptor (inside the observe slot) finds in the context values.
  const userSaw: Array<string | undefined> = [];
  let server: MeshServer;
  let transport: MeshTransport;
  let url: string;

  beforeAll(async () => {
    expect(SERVER_INTERCEPTOR_ORDER.slice(0, 2)).toEqual(["observe", "deadline+scope"]);
    server = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...base,
          async echo(req, ctx) {
            await sleep(1);
            spansSeen.push(currentTraceContext()?.spanId);
            currentLogger().info("handler");
            return base.echo(req, ctx);
          },
          async *echoServerStream(req) {
            for (let i = 0; i < req.repeat; i++) {
              await sleep(1);
              spansSeen.push(currentTraceContext()?.spanId);
              yield { payload: req.payload, index: i };
            }
            currentLogger().info("stream handler");
          },
        }),
      interceptors: [
        (next) => (req) => {
          userSaw.push(req.contextValues.get(traceContextKey)?.spanId);
          return next(req);
        },
      ],
      logger: logs.logger,
    });
    const bound = await server.listen();
    url = bound.url;
    transport = createMeshTransport({ target: bound.address, logger: false });
  });
  afterAll(async () => {
    await transport.close();
    await server.close({ graceMs: 0 });
  });
  afterEach(() => {
    logs.raw.length = 0;
    spansSeen.length = 0;
    userSaw.length = 0;
  });

  it("handlers see the span and logger across awaits", async () => {
    await createClient(EchoService, transport).echo({});
    const [finished] = logs.finished("server");
    const handlerLine = logs.lines().find((l) => l.msg === "handler");
    expect(spansSeen).toEqual([finished?.span_id]);
    expect(userSaw).toEqual([finished?.span_id]);
    expect(handlerLine?.span_id).toBe(finished?.span_id);
  });

  it("streaming handlers keep them at every step", async () => {
    for await (const _ of createClient(EchoService, transport).echoServerStream({ repeat: 3 })) {
      // drain
    }
    await expect.poll(() => logs.finished("server").length).toBe(1);
    const span = logs.finished("server")[0]?.span_id;
    expect(spansSeen).toEqual([span, span, span]);
    expect(logs.lines().find((l) => l.msg === "stream handler")?.span_id).toBe(span);
  });

  it("the deadline interceptor's DEADLINE_EXCEEDED is logged at warn", async () => {
    // A raw client with no timer of its own: only the server's deadline can end
    // the call (a Connect client would reset the stream at the same moment,
    // and the server would then log Canceled).
    const { toBinary, create } = await import("@bufbuild/protobuf");
    const { EchoRequestSchema } = await import("../../gen/test/v1/echo_pb.js");
    const body = toBinary(EchoRequestSchema, create(EchoRequestSchema, { delayMs: 300 }));
    const res = await rawGrpcCall(url, "/test.v1.EchoService/Echo", body, {
      "grpc-timeout": "50m",
    });
    expect(res.status).toBe(4);
    await expect.poll(() => logs.finished("server").length).toBe(1);
    expect(logs.finished("server")[0]).toMatchObject({
      "grpc.code": "DeadlineExceeded",
      level: 40,
    });
  });
});
