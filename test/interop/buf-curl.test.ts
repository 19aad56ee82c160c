// Interop: `buf curl` (grpc-go-connect, from the @bufbuild/buf npm package) as
// a third, non-JavaScript client against a real mesh server, reading the
// schema from proto/ (no reflection needed).

import { execFile } from "node:child_process";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshServer, type MeshServer } from "../../src/index.js";
import { CallLog, createMeshEchoImpl, EchoService } from "../support/grpc-js-echo.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "node_modules", ".bin");
const SERVED_BY = "mesh-for-buf-curl";

interface CurlResult {
  /** exitCode is 0 on success; for an RPC error, the gRPC code << 3 (see `buf curl --help`). */
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** bufCurl runs `buf curl` over gRPC with h2c prior knowledge against `url`. */
function bufCurl(
  url: string,
  data: unknown,
  extraArgs: readonly string[] = [],
): Promise<CurlResult> {
  const args = [
    "curl",
    "--protocol",
    "grpc",
    "--http2-prior-knowledge",
    "--schema",
    "proto",
    "--data",
    JSON.stringify(data),
    ...extraArgs,
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      "buf",
      args,
      {
        cwd: ROOT,
        env: { ...process.env, PATH: `${BIN}${path.delimiter}${process.env.PATH ?? ""}` },
        timeout: 15_000,
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(error);
          return;
        }
        resolve({ exitCode: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

/** parseJsonStream splits buf curl's output of several pretty-printed JSON messages. */
function parseJsonStream(out: string): unknown[] {
  return out
    .trim()
    .split(/\n(?=\{)/)
    .filter((s) => s.trim() !== "")
    .map((s) => JSON.parse(s) as unknown);
}

describe("interop: buf curl → mesh server", () => {
  let server: MeshServer;
  let url: string;

  beforeAll(async () => {
    server = createMeshServer({
      routes: (router) => router.service(EchoService, createMeshEchoImpl(new CallLog(), SERVED_BY)),
    });
    ({ url } = await server.listen({ host: "127.0.0.1", port: 0 }));
  });

  afterAll(async () => {
    await server?.close({ graceMs: 0 });
  });

  it("unary Echo returns the payload as protobuf JSON", async () => {
    const res = await bufCurl(`${url}/test.v1.EchoService/Echo`, { payload: "AQID" });
    expect(res.exitCode).toBe(0);
    // timeout_ms is 0 (no deadline sent) and so omitted from proto3 JSON.
    expect(JSON.parse(res.stdout)).toEqual({ payload: "AQID", servedBy: SERVED_BY });
  });

  it("grpc.health.v1.Health/Check returns SERVING for the server and for EchoService", async () => {
    const [overall, echo] = await Promise.all([
      bufCurl(`${url}/grpc.health.v1.Health/Check`, {}),
      bufCurl(`${url}/grpc.health.v1.Health/Check`, { service: "test.v1.EchoService" }),
    ]);
    expect(overall.exitCode).toBe(0);
    expect(JSON.parse(overall.stdout)).toEqual({ status: "SERVING" });
    expect(echo.exitCode).toBe(0);
    expect(JSON.parse(echo.stdout)).toEqual({ status: "SERVING" });
  });

  it("Health/Check for an unknown service fails with NOT_FOUND", async () => {
    const res = await bufCurl(`${url}/grpc.health.v1.Health/Check`, { service: "no.such.Service" });
    expect(res.exitCode).toBe(5 << 3);
    expect(JSON.parse(res.stderr)).toMatchObject({ code: "not_found" });
  });

  it("unary error UNAVAILABLE keeps the exact message and typed details", async () => {
    const message = "down: now / 100% ünïcode";
    const res = await bufCurl(`${url}/test.v1.EchoService/Echo`, {
      failCode: 14,
      failMessage: message,
    });
    expect(res.exitCode).toBe(14 << 3);
    const err = JSON.parse(res.stderr) as {
      code: string;
      message: string;
      details: { type: string; debug?: unknown }[];
    };
    expect(err.code).toBe("unavailable");
    // buf curl (Go) decodes grpc-message fully, unlike grpc-js.
    expect(err.message).toBe(message);
    expect(err.details.map((d) => d.type)).toEqual([
      "test.v1.EchoResponse",
      "google.protobuf.StringValue",
    ]);
    expect(err.details[1]?.debug).toBe(message);
  });

  it("server streaming prints every message in order", async () => {
    const res = await bufCurl(`${url}/test.v1.EchoService/EchoServerStream`, {
      payload: "Bw==",
      repeat: 3,
    });
    expect(res.exitCode).toBe(0);
    // index 0 is the proto3 default and so omitted from JSON.
    expect(parseJsonStream(res.stdout)).toEqual([
      { payload: "Bw==" },
      { payload: "Bw==", index: 1 },
      { payload: "Bw==", index: 2 },
    ]);
  });

  it("request headers come back as response headers and trailers (verbose output)", async () => {
    const res = await bufCurl(`${url}/test.v1.EchoService/Echo`, {}, [
      "-v",
      "-H",
      "x-echo-from: buf",
    ]);
    expect(res.exitCode).toBe(0);
    // buf curl -v prints received headers and trailers as "< (#1) Name: value".
    const received = res.stderr
      .split("\n")
      .filter((l) => /^buf: < \(#1\) X-Echo-From: buf$/.test(l));
    expect(received).toHaveLength(2);
  });
});
