import { Code, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createMeshServer, createMeshTransport, ServingStatus } from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { createMemoryRegistry } from "../support/memory-registry.js";
import { waitFor } from "../support/wait-for.js";

describe("server registration follows health", () => {
  it("registers on listen with the bound address and metadata, deregisters when NOT_SERVING", async () => {
    const registry = createMemoryRegistry();
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      registration: {
        registry,
        service: "echo",
        instanceId: "i-1",
        metadata: { zone: "z1" },
        deregisterDelayMs: 0,
      },
    });
    const { address } = await server.listen();
    expect(registry.live("echo")).toEqual([
      { service: "echo", instanceId: "i-1", address, metadata: { id: "i-1", zone: "z1" } },
    ]);
    server.health.set("", ServingStatus.NOT_SERVING);
    await waitFor(() => registry.live("echo").length === 0);
    server.health.set("", ServingStatus.SERVING);
    await waitFor(() => registry.live("echo").length === 1);
    await server.close({ graceMs: 0 });
    expect(registry.live("echo")).toEqual([]);
    expect(registry.log).toEqual([
      `register echo/i-1 ${address}`,
      "deregister echo/i-1",
      `register echo/i-1 ${address}`,
      "deregister echo/i-1",
    ]);
  });

  it("close() deregisters first and keeps serving during deregisterDelayMs", async () => {
    const registry = createMemoryRegistry();
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl("x")),
      registration: { registry, service: "echo", deregisterDelayMs: 300 },
    });
    const { address } = await server.listen();
    const transport = createMeshTransport({ target: address });
    const client = createClient(EchoService, transport);
    await client.echo({});
    const closing = server.close({ graceMs: 1_000 });
    await waitFor(() => registry.live("echo").length === 0);
    // Still serving on the open connection while clients catch up.
    expect((await client.echo({})).servedBy).toBe("x");
    await closing;
    await expect(client.echo({})).rejects.toMatchObject({ code: Code.Unavailable });
    await transport.close();
  });

  it("clients resolving through the registry follow a replacement with no failed call", async () => {
    const registry = createMemoryRegistry("mem");
    const start = async (name: string) => {
      const s = createMeshServer({
        routes: (r) => r.service(EchoService, createEchoImpl(name)),
        registration: { registry, service: "echo", deregisterDelayMs: 100 },
      });
      await s.listen();
      return s;
    };
    const first = await start("first");
    const transport = createMeshTransport({ target: "mem:///echo", registries: [registry] });
    const client = createClient(EchoService, transport);
    expect((await client.echo({})).servedBy).toBe("first");
    const second = await start("second");
    let failed = 0;
    const seen = new Set<string>();
    const load = (async () => {
      for (let i = 0; i < 200; i++) {
        try {
          seen.add((await client.echo({ delayMs: 2 }, { timeoutMs: 2_000 })).servedBy);
        } catch {
          failed++;
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    await first.close({ graceMs: 2_000 });
    await load;
    expect(failed).toBe(0);
    expect(seen.has("second")).toBe(true);
    await transport.close();
    await second.close({ graceMs: 0 });
  });

  it("validates the registration option when built", () => {
    const registry = createMemoryRegistry();
    expect(() =>
      createMeshServer({ routes: () => {}, registration: { registry, service: "" } }),
    ).toThrow(/registration.service ""/);
    expect(() =>
      createMeshServer({
        routes: () => {},
        registration: { registry, service: "a", deregisterDelayMs: -1 },
      }),
    ).toThrow(/deregisterDelayMs -1/);
  });
});
