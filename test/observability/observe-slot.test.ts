// The server observe interceptor in its own slot, outermost, outside the
// deadline+scope interceptor (as the mesh server chain will place it): the
// scope still carries the span and logger it put into the context values.

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMeshTransport, type MeshTransport } from "../../src/index.js";
import { currentLogger, currentTraceContext } from "../../src/observability/current-call.js";
import { createServerObserveInterceptor } from "../../src/observability/server-observe-interceptor.js";
import { createServerDeadlineInterceptor } from "../../src/server/deadline-interceptor.js";
import { createEchoImpl, EchoService, sleep } from "../support/echo-service.js";
import { captureLogs } from "./log-capture.js";

describe("server observe interceptor outside the call scope", () => {
  const logs = captureLogs();
  const base = createEchoImpl();
  const spansSeen: Array<string | undefined> = [];
  let h2: http2.Http2Server;
  let transport: MeshTransport;

  beforeAll(async () => {
    const handler = connectNodeAdapter({
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
        createServerObserveInterceptor({ logger: logs.logger }),
        createServerDeadlineInterceptor(),
      ],
    });
    h2 = http2.createServer(handler);
    await new Promise<void>((r) => h2.listen(0, "127.0.0.1", r));
    transport = createMeshTransport({
      target: `127.0.0.1:${(h2.address() as AddressInfo).port}`,
    });
  });
  afterAll(async () => {
    await transport.close();
    await new Promise((r) => h2.close(r));
  });
  afterEach(() => {
    logs.raw.length = 0;
    spansSeen.length = 0;
  });

  it("handlers see the span and logger across awaits", async () => {
    await createClient(EchoService, transport).echo({});
    const [finished] = logs.finished("server");
    const handlerLine = logs.lines().find((l) => l.msg === "handler");
    expect(spansSeen).toEqual([finished?.span_id]);
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
    await expect(
      createClient(EchoService, transport).echo({ delayMs: 300 }, { timeoutMs: 50 }),
    ).rejects.toThrow();
    await expect.poll(() => logs.finished("server").length).toBe(1);
    expect(logs.finished("server")[0]).toMatchObject({
      "grpc.code": "DeadlineExceeded",
      level: 40,
    });
  });
});
