import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/test/v1/echo_pb.js";
import {
  type BoundAddress,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { rawGrpcCall } from "../support/raw-grpc.js";

const echoPath = "/test.v1.EchoService/Echo";
const echoBytes = toBinary(
  EchoRequestSchema,
  create(EchoRequestSchema, { payload: new Uint8Array([7]) }),
);

describe("server deadline enforcement", () => {
  let server: MeshServer;
  let bound: BoundAddress;
  beforeAll(async () => {
    server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      maxTimeoutMs: 60_000,
    });
    bound = await server.listen();
  });
  afterAll(() => server.close({ graceMs: 0 }));

  it("answers DEADLINE_EXCEEDED at the deadline when the handler ignores cancellation", async () => {
    const transport = createMeshTransport({ target: bound.address });
    const client = createClient(EchoService, transport);
    const started = performance.now();
    const err = await client.echo({ delayMs: 3_000, ignoreCancel: true }, { timeoutMs: 80 }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    const elapsed = performance.now() - started;
    expect(err?.code).toBe(Code.DeadlineExceeded);
    // Generous on a busy host; the handler takes 3 s.
    expect(elapsed).toBeLessThan(1_500);
    await transport.close();
  });

  it("sends the server's DEADLINE_EXCEEDED on the wire, not only the client's own timer", async () => {
    // The raw client has no timer of its own: the status it reads came from the server.
    const slow = toBinary(
      EchoRequestSchema,
      create(EchoRequestSchema, { delayMs: 3_000, ignoreCancel: true }),
    );
    const started = performance.now();
    const res = await rawGrpcCall(bound.url, echoPath, slow, { "grpc-timeout": "80m" });
    expect(res.status).toBe(Code.DeadlineExceeded);
    // Generous on a busy host; the handler takes 3 s.
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it("tells the handler the remaining time through ctx.timeoutMs()", async () => {
    const res = await rawGrpcCall(bound.url, echoPath, echoBytes, { "grpc-timeout": "2S" });
    expect(res.status).toBe(0);
    const out = fromBinary(EchoResponseSchema, res.message0 ?? new Uint8Array());
    expect(out.timeoutMs).toBeGreaterThan(1500);
    expect(out.timeoutMs).toBeLessThanOrEqual(2000);
  });

  it.each([
    ["123.5m", "fraction"],
    ["123456789m", "nine digits"],
    ["10", "no unit"],
    ["m", "no digits"],
    ["-5m", "negative"],
    ["5x", "unknown unit"],
    ["5mm", "trailing garbage"],
    ["5 m", "inner space"],
  ])("rejects grpc-timeout %j (%s) with INVALID_ARGUMENT", async (value) => {
    const res = await rawGrpcCall(bound.url, echoPath, echoBytes, { "grpc-timeout": value });
    expect(res.status).toBe(Code.InvalidArgument);
    expect(res.message).toContain(value);
  });

  it("rejects a timeout above maxTimeoutMs with INVALID_ARGUMENT naming the cap", async () => {
    const res = await rawGrpcCall(bound.url, echoPath, echoBytes, { "grpc-timeout": "2M" });
    expect(res.status).toBe(Code.InvalidArgument);
    expect(res.message).toContain("60000");
  });

  it("ends a server stream with DEADLINE_EXCEEDED at the deadline", async () => {
    const transport = createMeshTransport({ target: bound.address });
    const client = createClient(EchoService, transport);
    const got: number[] = [];
    const started = performance.now();
    const err = await (async () => {
      for await (const m of client.echoServerStream(
        { payload: new Uint8Array([1]), repeat: 250, intervalMs: 20 },
        { timeoutMs: 150 },
      )) {
        got.push(m.index);
      }
    })().then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.DeadlineExceeded);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(250);
    // Generous on a busy host; the whole stream would take 5 s.
    expect(performance.now() - started).toBeLessThan(2_500);
    await transport.close();
  });
});
