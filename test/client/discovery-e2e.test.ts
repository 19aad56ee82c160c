import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDnsResolver,
  createMeshRegistry,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
} from "../../src/index.js";
import { startDnsServer, type TestDnsServer } from "../support/dns-server.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

describe("discovery end to end: a mesh transport resolving real servers", () => {
  const servers: MeshServer[] = [];
  const ports: number[] = [];
  let dns: TestDnsServer;
  beforeAll(async () => {
    for (const name of ["a", "b"]) {
      const s = createMeshServer({ routes: (r) => r.service(EchoService, createEchoImpl(name)) });
      ports.push((await s.listen()).port);
      servers.push(s);
    }
    dns = await startDnsServer();
  });
  afterAll(async () => {
    await dns.close();
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
  });

  it("dns:/// with a DNS server in the authority resolves A records to the target's port", async () => {
    dns.setA("echo.test", ["127.0.0.1"], 60);
    const transport = createMeshTransport({
      target: `dns://127.0.0.1:${dns.port}/echo.test:${ports[0]}`,
    });
    expect(
      (await createClient(EchoService, transport).echo({}, { timeoutMs: 2000 })).servedBy,
    ).toBe("a");
    await transport.close();
  });

  it("dns+srv:/// sees a scale-up on its poll, without any failure", async () => {
    dns.setA("a.test", ["127.0.0.1"], 1);
    dns.setA("b.test", ["127.0.0.1"], 1);
    dns.setSrv(
      "_grpc._tcp.echo.test",
      [{ priority: 1, weight: 1, port: ports[0] as number, target: "a.test" }],
      1,
    );
    const target = `dns+srv://127.0.0.1:${dns.port}/_grpc._tcp.echo.test`;
    const transport = createMeshTransport({
      target,
      policy: "round-robin",
      // The default poll floor is 30 s; a test wants it short.
      schemes: {
        "dns+srv": (t, clock) =>
          createDnsResolver({ target: t.raw, clock, minPollMs: 50, retryInitialMs: 50 }),
      },
    });
    const client = createClient(EchoService, transport);
    expect((await client.echo({}, { timeoutMs: 2000 })).servedBy).toBe("a");
    dns.setSrv(
      "_grpc._tcp.echo.test",
      [
        { priority: 1, weight: 1, port: ports[0] as number, target: "a.test" },
        { priority: 1, weight: 1, port: ports[1] as number, target: "b.test" },
      ],
      1,
    );
    const seen = new Set<string>();
    await waitFor(() => {
      client.echo({}).then(
        (r) => seen.add(r.servedBy),
        () => {},
      );
      return seen.has("b");
    });
    await transport.close();
  });

  it("mesh:/// follows servers registering in the embedded registry across registry instances", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-e2e-"));
    // Two registry instances on one directory stand for two processes.
    const serverSide = createMeshRegistry({ dir, leaseTtlMs: 2_000 });
    const clientSide = createMeshRegistry({ dir, leaseTtlMs: 2_000 });
    const start = async (name: string) => {
      const s = createMeshServer({
        routes: (r) => r.service(EchoService, createEchoImpl(name)),
        registration: { registry: serverSide, service: "echo", deregisterDelayMs: 200 },
      });
      await s.listen();
      return s;
    };
    const x = await start("x");
    const transport = createMeshTransport({
      target: "mesh:///echo",
      registries: [clientSide],
      policy: "round-robin",
    });
    const client = createClient(EchoService, transport);
    expect((await client.echo({}, { timeoutMs: 2000 })).servedBy).toBe("x");
    const y = await start("y");
    const seen = new Set<string>();
    await waitFor(() => {
      client.echo({}).then(
        (r) => seen.add(r.servedBy),
        () => {},
      );
      return seen.has("y");
    });
    // Replace x while calls flow: not one may fail.
    let failed = 0;
    const load = (async () => {
      for (let i = 0; i < 150; i++) {
        await client.echo({ delayMs: 2 }, { timeoutMs: 2_000 }).catch(() => failed++);
      }
    })();
    await x.close({ graceMs: 2_000 });
    await load;
    expect(failed).toBe(0);
    await transport.close();
    await y.close({ graceMs: 0 });
    await clientSide.close();
    await serverSide.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
