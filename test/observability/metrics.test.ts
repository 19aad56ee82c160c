import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import {
  createMetrics,
  loadPromClient,
  type MeshMetrics,
  type MetricsServer,
  metricsHandler,
  serveMetrics,
} from "../../src/observability/metrics.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { captureLogs } from "./log-capture.js";

/** sample reads one sample's value from Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

const ECHO = { grpc_service: "test.v1.EchoService", grpc_method: "Echo", grpc_type: "unary" };

describe("metrics", () => {
  const logs = captureLogs("warn");
  let metrics: MeshMetrics;
  let admin: MetricsServer;
  let server: MeshServer;
  let transport: MeshTransport;

  beforeAll(async () => {
    metrics = await createMetrics();
    admin = await serveMetrics({ metrics, port: 0 });
    // Observed by default: the metrics go in through the options, and the
    // transport's events reach them without an onEvent of ours.
    server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      logger: logs.logger,
      metrics,
    });
    const { address } = await server.listen();
    transport = createMeshTransport({ target: address, logger: logs.logger, metrics });
  });
  afterAll(async () => {
    await transport.close();
    await server.close({ graceMs: 0 });
    await admin.close();
  });

  async function scrape(): Promise<string> {
    const res = await fetch(admin.url);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain");
    return res.text();
  }

  it("/metrics scraped over HTTP shows the counters moving", async () => {
    const client = createClient(EchoService, transport);
    await client.echo({});
    const before = await scrape();
    expect(sample(before, "grpc_server_started_total", ECHO)).toBe(1);
    expect(sample(before, "grpc_server_handled_total", { ...ECHO, grpc_code: "OK" })).toBe(1);
    expect(sample(before, "grpc_client_handled_total", { ...ECHO, grpc_code: "OK" })).toBe(1);
    expect(sample(before, "grpc_server_handling_seconds_count", ECHO)).toBe(1);
    expect(sample(before, "grpc_client_handling_seconds_count", ECHO)).toBe(1);

    // The same idempotency key twice: the server (idempotency on by default)
    // replays the first outcome.
    const headers = { "idempotency-key": "metrics-k3y" };
    await client.echo({}, { headers });
    await client.echo({}, { headers });
    await expect(client.echo({ failCode: Code.NotFound })).rejects.toThrow();
    const after = await scrape();
    expect(sample(after, "grpc_server_started_total", ECHO)).toBe(4);
    expect(sample(after, "grpc_client_started_total", ECHO)).toBe(4);
    expect(sample(after, "grpc_server_handled_total", { ...ECHO, grpc_code: "OK" })).toBe(3);
    expect(sample(after, "grpc_server_handled_total", { ...ECHO, grpc_code: "NotFound" })).toBe(1);
    expect(sample(after, "grpc_client_handled_total", { ...ECHO, grpc_code: "NotFound" })).toBe(1);
    expect(sample(after, "grpc_server_handling_seconds_count", ECHO)).toBe(4);
    expect(
      sample(after, "mesh_idempotency_replays_total", {
        grpc_service: "test.v1.EchoService",
        grpc_method: "Echo",
      }),
    ).toBe(1);
    // The transport's balancer reported its endpoint set.
    expect(sample(after, "mesh_endpoints", { target: transport.target })).toBe(1);
  });

  it("streams are counted when they end", async () => {
    const client = createClient(EchoService, transport);
    for await (const _ of client.echoServerStream({ repeat: 2 })) {
      // drain
    }
    const labels = {
      grpc_service: "test.v1.EchoService",
      grpc_method: "EchoServerStream",
      grpc_type: "server_stream",
    };
    await expect
      .poll(async () =>
        sample(await scrape(), "grpc_server_handled_total", { ...labels, grpc_code: "OK" }),
      )
      .toBe(1);
  });

  it("mesh events feed the mesh metrics", async () => {
    metrics.onEvent({
      type: "breaker",
      key: "t svc/M",
      from: "closed",
      to: "open",
      reason: "failure-rate",
      at: 0,
    });
    metrics.onEvent({
      source: "outlier",
      target: "t",
      type: "ejected",
      address: "a:1",
      reason: "consecutive-failures",
      at: 0,
      ejectionMs: 1,
      until: 1,
      ejectionCount: 1,
    });
    for (const attempt of [2, 3]) {
      metrics.onEvent({
        type: "retry",
        target: "t",
        method: "test.v1.EchoService/Echo",
        attempt,
        code: Code.Unavailable,
        delayMs: 1,
        transparent: false,
      });
    }
    metrics.onEvent({ type: "budget-exhausted", target: "t", method: "m", code: Code.Unavailable });
    let text = await scrape();
    expect(sample(text, "mesh_breaker_state", { key: "t svc/M" })).toBe(2);
    expect(sample(text, "mesh_outlier_ejections_total", { target: "t" })).toBe(1);
    expect(
      sample(text, "mesh_client_retries_total", {
        grpc_service: "test.v1.EchoService",
        grpc_method: "Echo",
      }),
    ).toBe(2);
    expect(sample(text, "mesh_retry_budget_exhausted_total", { target: "t" })).toBe(1);
    metrics.onEvent({
      type: "breaker",
      key: "t svc/M",
      from: "open",
      to: "half-open",
      reason: "open-elapsed",
      at: 1,
    });
    text = await scrape();
    expect(sample(text, "mesh_breaker_state", { key: "t svc/M" })).toBe(1);
  });

  it("metricsHandler serves a user-chosen HTTP server", async () => {
    const http: Server = createServer(metricsHandler(metrics));
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const { port } = http.address() as AddressInfo;
    try {
      const ok = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain("grpc_server_started_total");
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: "POST" })).status).toBe(
        405,
      );
    } finally {
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });

  it("uses a given registry, and two createMetrics share its metrics", async () => {
    const registry = new Registry();
    const m1 = await createMetrics({ registry });
    const m2 = await createMetrics({ registry });
    const labels = { service: "s", method: "m", type: "unary" };
    m1.serverStarted(labels);
    m2.serverStarted(labels);
    expect(
      sample(await registry.metrics(), "grpc_server_started_total", { grpc_service: "s" }),
    ).toBe(2);
  });

  it("a transport's own retries reach its metrics; a logical call is counted once", async () => {
    let calls = 0;
    const flaky = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...createEchoImpl(),
          echo: () => {
            calls++;
            if (calls === 1) throw new ConnectError("try again", Code.Unavailable);
            return {};
          },
        }),
      logger: false,
    });
    const { address } = await flaky.listen();
    const t = createMeshTransport({ target: address, logger: logs.logger, metrics });
    const ECHO_RPC = { grpc_service: "test.v1.EchoService", grpc_method: "Echo" };
    const OK = { ...ECHO, grpc_code: "OK" };
    try {
      const before = await scrape();
      await createClient(EchoService, t).echo({});
      const after = await scrape();
      expect(calls).toBe(2);
      expect(
        sample(after, "mesh_client_retries_total", ECHO_RPC) -
          sample(before, "mesh_client_retries_total", ECHO_RPC),
      ).toBe(1);
      expect(
        sample(after, "grpc_client_handled_total", OK) -
          sample(before, "grpc_client_handled_total", OK),
      ).toBe(1);
      expect(
        sample(after, "grpc_client_handled_total", { ...ECHO, grpc_code: "Unavailable" }),
      ).toBe(0);
      expect(sample(after, "mesh_endpoints", { target: address })).toBe(1);
    } finally {
      await t.close();
      await flaky.close({ graceMs: 0 });
    }
  });

  it("rejects bad buckets and explains a missing prom-client", async () => {
    await expect(createMetrics({ buckets: [1, 0.5] })).rejects.toThrow(RangeError);
    const missing = () =>
      Promise.reject(
        Object.assign(new Error("Cannot find package 'prom-client'"), {
          code: "ERR_MODULE_NOT_FOUND",
        }),
      );
    await expect(loadPromClient(missing)).rejects.toThrow(/npm install prom-client/);
    await expect(serveMetrics({ metrics, port: 70_000 })).rejects.toThrow(RangeError);
  });
});
