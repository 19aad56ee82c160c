import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { createClientAttemptInterceptor } from "../../src/observability/client-attempt-interceptor.js";
import { createClientObserveInterceptor } from "../../src/observability/client-observe-interceptor.js";
import { currentLogger } from "../../src/observability/current-call.js";
import { createEventLogger } from "../../src/observability/event-logger.js";
import { hashForLog, REDACTED, redactHeaders } from "../../src/observability/redact-headers.js";
import { createServerObserveInterceptor } from "../../src/observability/server-observe-interceptor.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { createEchoGrpcClient, grpcUnary } from "../support/grpc-js-echo.js";
import { captureLogs } from "./log-capture.js";

const SECRETS = {
  authorization: "Bearer s3cr3t-t0ken-AAAA",
  cookie: "session=c00kie-BBBB",
  "idempotency-key": "idem-k3y-CCCC",
  "x-api-secret": "api-s3cret-DDDD",
  setCookie: "sid=resp0nse-EEEE",
  password: "hunter2-FFFF",
} as const;

describe("redactHeaders", () => {
  it("redacts credentials and cookies, hashes idempotency keys, keeps the rest", () => {
    const out = redactHeaders(
      new Headers({
        Authorization: SECRETS.authorization,
        cookie: SECRETS.cookie,
        "set-cookie": SECRETS.setCookie,
        "idempotency-key": SECRETS["idempotency-key"],
        "x-api-secret": SECRETS["x-api-secret"],
        "x-request-id": "r-1",
      }),
      ["X-Api-Secret"],
    );
    expect(out).toEqual({
      authorization: REDACTED,
      cookie: REDACTED,
      "set-cookie": REDACTED,
      "idempotency-key": hashForLog(SECRETS["idempotency-key"]),
      "x-api-secret": REDACTED,
      "x-request-id": "r-1",
    });
    expect(hashForLog("abc")).toMatch(/^sha256:[0-9a-f]{12}$/);
    expect(hashForLog("abc")).toBe("sha256:ba7816bf8f01"); // SHA-256("abc") = ba7816bf8f01cfea…
  });

  it("takes a plain record too", () => {
    expect(redactHeaders({ Cookie: "x", accept: "y" })).toEqual({ cookie: REDACTED, accept: "y" });
  });
});

describe("no secret reaches the logs", () => {
  const logs = captureLogs("debug");
  let server: MeshServer;
  let transport: MeshTransport;
  let address: string;

  beforeAll(async () => {
    const events = createEventLogger(logs.logger);
    const base = createEchoImpl();
    server = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...createEchoImpl(),
          echo: (req, ctx) => {
            ctx.responseHeader.set("set-cookie", SECRETS.setCookie);
            currentLogger().info(
              { headers: redactHeaders(ctx.requestHeader, ["x-api-secret"]) },
              "handler",
            );
            return base.echo(req, ctx);
          },
        }),
      interceptors: [
        createServerObserveInterceptor({
          logger: logs.logger,
          logHeaders: true,
          logPayloads: true,
          redactHeaders: ["x-api-secret"],
          redact: ['["grpc.request.content"].failMessage'],
        }),
      ],
    });
    ({ address } = await server.listen());
    transport = createMeshTransport({
      target: address,
      interceptors: [
        createClientObserveInterceptor({
          logger: logs.logger,
          logHeaders: true,
          redactHeaders: ["x-api-secret"],
        }),
        createClientAttemptInterceptor({ logger: logs.logger }),
      ],
      onEvent: events.onEvent,
    });
  });
  afterAll(async () => {
    await transport.close();
    await server.close({ graceMs: 0 });
  });

  it("with secrets in headers and payloads, from mesh and grpc-js clients", async () => {
    const client = createClient(EchoService, transport);
    const headers = {
      authorization: SECRETS.authorization,
      cookie: SECRETS.cookie,
      "idempotency-key": SECRETS["idempotency-key"],
      "x-api-secret": SECRETS["x-api-secret"],
    };
    await client.echo({ failMessage: SECRETS.password }, { headers });
    // A failing call too: error lines must not leak either.
    await expect(
      client.echo({ failCode: 7, failMessage: "denied" }, { headers }),
    ).rejects.toThrow();

    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    const g = createEchoGrpcClient(address);
    try {
      const out = await grpcUnary(g, { failMessage: SECRETS.password }, { metadata: md });
      expect(out.error).toBeUndefined();
    } finally {
      g.close();
    }

    const all = logs.raw.join("");
    expect(logs.finished("server")).toHaveLength(3);
    expect(logs.finished("client")).toHaveLength(2);
    for (const secret of Object.values(SECRETS)) {
      expect(all).not.toContain(secret);
    }
    // What is there instead: markers and the key's hash, so lines still correlate.
    expect(all).toContain(REDACTED);
    expect(all).toContain(hashForLog(SECRETS["idempotency-key"]));
    const server = logs.finished("server")[0];
    expect(server?.["grpc.request.header"]).toMatchObject({
      authorization: REDACTED,
      "x-api-secret": REDACTED,
    });
    expect(server?.["grpc.response.header"]).toMatchObject({ "set-cookie": REDACTED });
    expect(server?.["grpc.request.content"]).toMatchObject({ failMessage: "[Redacted]" });
    expect(logs.finished("client")[0]?.["grpc.response.header"]).toMatchObject({
      "set-cookie": REDACTED,
    });
  });

  it("headers and payloads are not logged unless asked for", async () => {
    const quiet = captureLogs();
    const s = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      interceptors: [createServerObserveInterceptor({ logger: quiet.logger })],
    });
    const { address: a } = await s.listen();
    const t = createMeshTransport({
      target: a,
      interceptors: [createClientObserveInterceptor({ logger: quiet.logger })],
    });
    try {
      await createClient(EchoService, t).echo(
        { failMessage: "payload-GGGG" },
        { headers: { "x-visible": "header-HHHH" } },
      );
    } finally {
      await t.close();
      await s.close({ graceMs: 0 });
    }
    const all = quiet.raw.join("");
    expect(quiet.finished("server")).toHaveLength(1);
    expect(all).not.toContain("payload-GGGG");
    expect(all).not.toContain("header-HHHH");
  });
});
