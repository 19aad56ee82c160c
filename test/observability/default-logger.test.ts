// The default logger: quiet on stdout unless asked (issue 15.5). The decision
// is table-tested; the behaviour through child processes making real calls.

import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrderService, OrderService } from "../../examples/order-service.js";
import { createDefaultLogger, defaultLoggerConfig } from "../../src/default-logger.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";

const run = promisify(execFile);
const CLIENT = path.join(import.meta.dirname, "default-logger-client.ts");

describe("defaultLoggerConfig", () => {
  it.each([
    [{}, { level: "warn", fd: 2, pretty: false }],
    [{ MESH_LOG_LEVEL: "" }, { level: "warn", fd: 2, pretty: false }],
    [{ MESH_LOG_LEVEL: "info" }, { level: "info", fd: 1, pretty: false }],
    [{ MESH_LOG_LEVEL: " DEBUG " }, { level: "debug", fd: 1, pretty: false }],
    [{ MESH_LOG_LEVEL: "silent" }, { level: "silent", fd: 1, pretty: false }],
    [{ MESH_LOG_PRETTY: "1" }, { level: "warn", fd: 2, pretty: true }],
    [
      { MESH_LOG_PRETTY: "true", MESH_LOG_LEVEL: "info" },
      { level: "info", fd: 1, pretty: true },
    ],
    [{ MESH_LOG_PRETTY: "0" }, { level: "warn", fd: 2, pretty: false }],
  ])("%j → %j", (env, want) => {
    expect(defaultLoggerConfig(env)).toEqual(want);
  });

  it("rejects an unknown level, naming it", () => {
    expect(() => defaultLoggerConfig({ MESH_LOG_LEVEL: "verbose" })).toThrow(RangeError);
    expect(() => defaultLoggerConfig({ MESH_LOG_LEVEL: "verbose" })).toThrow(
      /MESH_LOG_LEVEL "verbose" must be one of/,
    );
  });

  it("warns once, in one line, when pretty output is asked for without pino-pretty", () => {
    const lines: string[] = [];
    const logger = createDefaultLogger(
      { MESH_LOG_PRETTY: "1", MESH_LOG_LEVEL: "silent" },
      { loadPretty: () => undefined, warn: (l) => lines.push(l) },
    );
    expect(logger.level).toBe("silent");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/MESH_LOG_PRETTY is set but pino-pretty is not installed/);
    expect(lines[0]).not.toContain("\n");
  });
});

describe("default logger in a client process", () => {
  let server: MeshServer;
  let address: string;

  beforeAll(async () => {
    server = createMeshServer({
      // createOrder only: getOrder answers UNIMPLEMENTED.
      routes: (r) =>
        r.service(OrderService, { createOrder: createOrderService("log-test").createOrder }),
      logger: false,
    });
    ({ address } = await server.listen({ port: 0 }));
  });
  afterAll(() => server.close({ graceMs: 0 }));

  function client(mode: "ok" | "fail", env: Record<string, string>) {
    const base = { ...process.env };
    delete base.MESH_LOG_LEVEL;
    delete base.MESH_LOG_PRETTY;
    return run(process.execPath, ["--import", "tsx", CLIENT, address, mode], {
      env: { ...base, ...env },
      timeout: 30_000,
    });
  }

  it("prints nothing for a successful call by default", async () => {
    const { stdout, stderr } = await client("ok", {});
    expect(stdout).toBe("");
    expect(stderr).toBe("");
  });

  it("writes a failed call to stderr by default, stdout untouched", async () => {
    const { stdout, stderr } = await client("fail", {});
    expect(stdout).toBe("");
    const lines = stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toContainEqual(
      expect.objectContaining({ "grpc.method": "GetOrder", "grpc.code": "Unimplemented" }),
    );
  });

  it("prints one JSON line per call on stdout with MESH_LOG_LEVEL=info", async () => {
    const { stdout } = await client("ok", { MESH_LOG_LEVEL: "info" });
    const calls = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "finished call");
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ "grpc.method": "CreateOrder", "grpc.code": "OK" });
  });

  it("prints pretty lines with MESH_LOG_PRETTY=1", async () => {
    const { stdout } = await client("ok", { MESH_LOG_LEVEL: "info", MESH_LOG_PRETTY: "1" });
    expect(stdout).toMatch(/INFO.*finished call/);
    expect(() => JSON.parse(stdout.trim().split("\n")[0] ?? "")).toThrow();
  });
});
