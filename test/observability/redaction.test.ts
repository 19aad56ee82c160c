import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { currentLogger } from "../../src/observability/current-call.js";
import { hashForLog, REDACTED, redactHeaders } from "../../src/observability/redact-headers.js";
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
  // keysSeen are the idempotency keys the handler received, generated ones too.
  const keysSeen: Array<string | null> = [];

  beforeAll(async () => {
    const base = createEchoImpl();
    // Observed by default: logger and logging options are the server's and
    // transport's own; their events (balancer, retry, breaker, idempotency)
    // go to the same logger.
    server = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...createEchoImpl(),
          echo: (req, ctx) => {
            keysSeen.push(ctx.requestHeader.get("idempotency-key"));
            ctx.responseHeader.set("set-cookie", SECRETS.setCookie);
            currentLogger().info(
              { headers: redactHeaders(ctx.requestHeader, ["x-api-secret"]) },
              "handler",
            );
            return base.echo(req, ctx);
          },
        }),
      logger: logs.logger,
      logging: {
        logHeaders: true,
        logPayloads: true,
        redactHeaders: ["x-api-secret"],
        redact: ['["grpc.request.content"].failMessage'],
      },
    });
    ({ address } = await server.listen());
    transport = createMeshTransport({
      target: address,
      logger: logs.logger,
      logging: { logHeaders: true, redactHeaders: ["x-api-secret"] },
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
    const { "idempotency-key": _, ...withoutKey } = headers;
    // 1. Runs the handler under the caller's key.
    await client.echo({ failMessage: SECRETS.password }, { headers });
    // 2. A failing call too, under a key the client generates: error lines
    // must not leak either.
    await expect(
      client.echo({ failCode: 7, failMessage: "denied" }, { headers: withoutKey }),
    ).rejects.toThrow(/denied/);
    // 3. The caller's key with another payload: the server refuses (conflict).
    await expect(client.echo({ failMessage: "other" }, { headers })).rejects.toThrow(
      /used before with a different request/,
    );

    // 4. A grpc-js client with the same key and payload as 1: replayed.
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    const g = createEchoGrpcClient(address);
    try {
      const out = await grpcUnary(g, { failMessage: SECRETS.password }, { metadata: md });
      expect(out.error).toBeUndefined();
    } finally {
      g.close();
    }

    // The handler ran for 1 and 2 only; 2 carried a generated key.
    expect(keysSeen).toHaveLength(2);
    expect(keysSeen[0]).toBe(SECRETS["idempotency-key"]);
    const generated = keysSeen[1];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);

    const all = logs.raw.join("");
    expect(logs.finished("server").map((l) => l["grpc.code"])).toEqual([
      "OK",
      "PermissionDenied",
      "FailedPrecondition",
      "OK",
    ]);
    expect(logs.finished("client")).toHaveLength(3);
    for (const secret of [...Object.values(SECRETS), generated as string]) {
      expect(all).not.toContain(secret);
    }
    // What is there instead: markers and the keys' hashes, so lines still correlate.
    expect(all).toContain(REDACTED);
    expect(all).toContain(hashForLog(SECRETS["idempotency-key"]));
    expect(all).toContain(hashForLog(generated as string));
    const server = logs.finished("server")[0];
    expect(server?.["grpc.request.header"]).toMatchObject({
      authorization: REDACTED,
      cookie: REDACTED,
      "idempotency-key": hashForLog(SECRETS["idempotency-key"]),
      "x-api-secret": REDACTED,
    });
    expect(server?.["grpc.response.header"]).toMatchObject({ "set-cookie": REDACTED });
    expect(server?.["grpc.request.content"]).toMatchObject({ failMessage: "[Redacted]" });
    const clientLines = logs.finished("client");
    expect(clientLines[0]?.["grpc.request.header"]).toMatchObject({
      authorization: REDACTED,
      "idempotency-key": hashForLog(SECRETS["idempotency-key"]),
    });
    expect(clientLines[0]?.["grpc.response.header"]).toMatchObject({
      "set-cookie": REDACTED,
    });
    // The generated key is logged hashed on both sides.
    expect(clientLines[1]?.["grpc.request.header"]).toMatchObject({
      "idempotency-key": hashForLog(generated as string),
    });
    expect(logs.finished("server")[1]?.["grpc.request.header"]).toMatchObject({
      "idempotency-key": hashForLog(generated as string),
    });
    // The replay, from the grpc-js client, is marked and its headers redacted.
    expect(logs.finished("server")[3]).toMatchObject({
      "idempotency.replayed": true,
      "grpc.request.header": { authorization: REDACTED, cookie: REDACTED },
    });
    // The server's idempotency events name the key by its digest only.
    const digest = hashForLog(SECRETS["idempotency-key"]).slice("sha256:".length);
    const idem = logs.lines().filter((l) => String(l.event).startsWith("idempotency."));
    expect(idem.map((l) => [l.event, l.keyDigest])).toEqual(
      expect.arrayContaining([
        ["idempotency.conflict", digest],
        ["idempotency.replayed", digest],
      ]),
    );
  });

  it("headers and payloads are not logged unless asked for", async () => {
    const quiet = captureLogs();
    const s = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      logger: quiet.logger,
    });
    const { address: a } = await s.listen();
    const t = createMeshTransport({ target: a, logger: quiet.logger });
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
    expect(quiet.finished("client")).toHaveLength(1);
    expect(all).not.toContain("grpc.request.header");
    expect(all).not.toContain("payload-GGGG");
    expect(all).not.toContain("header-HHHH");
  });
});
