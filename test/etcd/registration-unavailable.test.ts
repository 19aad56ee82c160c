// Issue 14.4 / 15.4: listen() with an etcd registration must settle in
// bounded time when etcd is unreachable, and an `etcd:///` client must say
// which etcd it tried.
import { createServer, type Server, type Socket } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshTransport } from "../../src/client/create-mesh-transport.js";
import { createEtcdRegistry } from "../../src/discovery/etcd-registry.js";
import { createMeshServer } from "../../src/server/create-mesh-server.js";
import { captureLogs } from "../observability/log-capture.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { type EtcdServer, requireEtcd, startEtcdServer } from "../support/etcd-server.js";

const hasEtcd = await requireEtcd();

/** closedPort is a loopback port nothing listens on (connections are refused). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** canBind says whether the port is free again (the server released it). */
async function canBind(port: number): Promise<boolean> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

const routes = (router: import("@connectrpc/connect").ConnectRouter) =>
  router.service(EchoService, createEchoImpl());

describe("listen() with an unreachable etcd", () => {
  it('fails listen() naming the etcd endpoints and the cause, and releases the port ("fail", the default)', async () => {
    const etcdPort = await closedPort();
    const registry = createEtcdRegistry({ endpoints: [`127.0.0.1:${etcdPort}`] });
    const server = createMeshServer({
      routes,
      logger: false,
      registration: { registry, service: "orders" },
    });
    const port = await closedPort();
    const error = await server.listen({ port }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).message).toContain(`127.0.0.1:${etcdPort}`);
    expect((error as ConnectError).message).toContain('service "orders"');
    expect((error as ConnectError).message).toMatch(/ECONNREFUSED/);
    expect((error as ConnectError).cause).toBeDefined();
    expect(await canBind(port)).toBe(true);
    await server.close();
    await registry.close();
  });

  describe("an etcd that accepts connections and never answers", () => {
    let blackhole: Server;
    let port = 0;
    const sockets = new Set<Socket>();
    beforeAll(async () => {
      blackhole = createServer((socket) => {
        sockets.add(socket);
      });
      await new Promise<void>((r) => blackhole.listen(0, "127.0.0.1", r));
      port = (blackhole.address() as { port: number }).port;
    });
    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((r) => blackhole.close(() => r()));
    });

    it("fails listen() after registration.timeoutMs, naming the endpoints", async () => {
      const registry = createEtcdRegistry({ endpoints: [`127.0.0.1:${port}`] });
      const server = createMeshServer({
        routes,
        logger: false,
        registration: { registry, service: "orders", timeoutMs: 300, onUnavailable: "fail" },
      });
      const error = await server.listen().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(error)).toContain("did not complete within 300 ms");
      expect(String(error)).toContain(`endpoints 127.0.0.1:${port}`);
      expect(server.address).toBeDefined();
      expect(await canBind(server.address?.port ?? 0)).toBe(true);
      await registry.close();
    });
  });

  it("validates registration options at construction, quoting the bad value", () => {
    const registry = createEtcdRegistry({ endpoints: ["127.0.0.1:1"] });
    expect(() =>
      createMeshServer({
        routes,
        logger: false,
        registration: { registry, service: "orders", timeoutMs: 0 },
      }),
    ).toThrow(/registration.timeoutMs 0/);
    expect(() =>
      createMeshServer({
        routes,
        logger: false,
        registration: {
          registry,
          service: "orders",
          onUnavailable: "later" as "fail",
        },
      }),
    ).toThrow(/registration.onUnavailable "later"/);
    return registry.close();
  });
});

describe.skipIf(!hasEtcd)("retry-in-background against a real etcd that comes back", () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcdServer();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it("listen() resolves with a warning, and the registration lands once etcd is back", async () => {
    const prefix = `/t${process.pid}/background`;
    const registry = createEtcdRegistry({
      endpoints: [etcd.endpoint],
      prefix,
      retryBackoff: { initialMs: 50, maxMs: 200 },
    });
    await etcd.stop();
    const logs = captureLogs("info");
    const server = createMeshServer({
      routes,
      logger: logs.logger,
      registration: {
        registry,
        service: "orders",
        instanceId: "bg",
        timeoutMs: 2_000,
        onUnavailable: "retry-in-background",
        retryBackoff: { initialMs: 50, maxMs: 200 },
      },
    });
    const bound = await server.listen();
    const warning = logs.lines().find((l) => l.level === 40 && /background/.test(l.msg ?? ""));
    expect(warning?.msg).toContain(`endpoints ${etcd.endpoint}`);
    // The server serves although it is not registered yet.
    const client = createClient(
      EchoService,
      createMeshTransport({ target: bound.address, logger: false }),
    );
    expect((await client.echo({ payload: new Uint8Array([1]) })).servedBy).toBe("echo");

    await etcd.restart();
    const key = new TextEncoder().encode(`${prefix}/orders/bg`);
    await expect
      .poll(async () => (await etcd.client.kv.range({ key })).kvs.length, { timeout: 20_000 })
      .toBe(1);
    await server.close({ graceMs: 0 });
    expect((await etcd.client.kv.range({ key })).kvs.length).toBe(0);
    await registry.close();
  });
});

describe("etcd:/// with no registry configured", () => {
  it("fails the call UNAVAILABLE naming the target and the etcd endpoints, with the cause, and logs no stack trace", async () => {
    const etcdPort = await closedPort();
    // The shared etcd registry reads this once, on first use in this process.
    process.env.MESH_ETCD_ENDPOINTS = `127.0.0.1:${etcdPort}`;
    const logs = captureLogs("info");
    const transport = createMeshTransport({ target: "etcd:///orders", logger: logs.logger });
    const client = createClient(EchoService, transport);
    const error = await client.echo({}, { timeoutMs: 1_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await transport.close();
    expect(error).toBeInstanceOf(ConnectError);
    const e = error as ConnectError;
    expect(e.code).toBe(Code.Unavailable);
    expect(e.message).toContain('"etcd:///orders"');
    expect(e.message).toContain(`etcd at 127.0.0.1:${etcdPort}`);
    expect(e.message).toMatch(/ECONNREFUSED/);
    expect(e.cause).toBeDefined();
    expect(logs.raw.join("")).not.toMatch(/\\n\s+at /);
    // One warning for the outage, not one per retry.
    expect(logs.lines().filter((l) => l.msg === "resolver error").length).toBe(1);
  });
});
