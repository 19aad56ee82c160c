import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";
import { createMeshServer, createMeshTransport } from "../../src/index.js";
import { Health } from "../../src/server/health-service.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

async function start() {
  const server = createMeshServer({ routes: (r) => r.service(EchoService, createEchoImpl()) });
  const bound = await server.listen();
  const transport = createMeshTransport({ target: bound.address });
  return { server, bound, transport, echo: createClient(EchoService, transport) };
}

describe("graceful close of the mesh server", () => {
  it("lets an in-flight call finish within graceMs, then stops", async () => {
    const { server, transport, echo } = await start();
    const call = echo.echo({ delayMs: 300, payload: new Uint8Array([1]) });
    await waitFor(() => server.inFlight === 1);
    const started = performance.now();
    const closed = server.close({ graceMs: 5_000 });
    expect(server.health.get("")).toBe(Status.NOT_SERVING);
    const res = await call;
    expect([...res.payload]).toEqual([1]);
    await closed;
    // Well before graceMs (5 s): close finished when the last call did.
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(server.inFlight).toBe(0);
    await transport.close();
  });

  it("cancels calls still running after graceMs with UNAVAILABLE", async () => {
    const { server, transport, echo } = await start();
    const call = echo.echo({ delayMs: 10_000 }).catch((e: unknown) => ConnectError.from(e));
    await waitFor(() => server.inFlight === 1);
    const started = performance.now();
    await server.close({ graceMs: 200 });
    const elapsed = performance.now() - started;
    const err = await call;
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(elapsed).toBeGreaterThanOrEqual(190);
    // Generous on a busy host; the call would run 10 s.
    expect(elapsed).toBeLessThan(5_000);
    await transport.close();
  });

  it("refuses new calls after close with UNAVAILABLE", async () => {
    const { server, transport, echo } = await start();
    await echo.echo({});
    await server.close({ graceMs: 0 });
    await expect(echo.echo({})).rejects.toMatchObject({ code: Code.Unavailable });
    await transport.close();
  });

  it("close() is idempotent: every call returns the same promise", async () => {
    const { server, transport } = await start();
    const a = server.close();
    const b = server.close({ graceMs: 1 });
    expect(a).toBe(b);
    await a;
    await transport.close();
  });

  it("rejects a negative graceMs with a RangeError naming the value", async () => {
    const { server, transport } = await start();
    await expect(server.close({ graceMs: -1 })).rejects.toThrow(/graceMs -1/);
    await server.close({ graceMs: 0 });
    await transport.close();
  });
});

describe("grpc.health.v1.Health on the mesh server", () => {
  it("Check answers SERVING for the server and each service, NOT_FOUND for unknown ones", async () => {
    const { server, transport } = await start();
    const health = createClient(Health, transport);
    expect((await health.check({ service: "" })).status).toBe(Status.SERVING);
    expect((await health.check({ service: "test.v1.EchoService" })).status).toBe(Status.SERVING);
    await expect(health.check({ service: "nope.v1.Nope" })).rejects.toMatchObject({
      code: Code.NotFound,
    });
    server.health.set("test.v1.EchoService", Status.NOT_SERVING);
    expect((await health.check({ service: "test.v1.EchoService" })).status).toBe(
      Status.NOT_SERVING,
    );
    await server.close({ graceMs: 0 });
    await transport.close();
  });

  it("Watch streams changes, sends NOT_SERVING on close and then ends so the drain is not held", async () => {
    const { server, transport } = await start();
    const health = createClient(Health, transport);
    const seen: Status[] = [];
    const watching = (async () => {
      for await (const m of health.watch({ service: "test.v1.EchoService" })) {
        seen.push(m.status);
        if (seen.length === 1) {
          server.health.set("test.v1.EchoService", Status.NOT_SERVING);
          server.health.set("test.v1.EchoService", Status.SERVING);
        }
      }
    })();
    await waitFor(() => seen.length === 3);
    const started = performance.now();
    await server.close({ graceMs: 5_000 });
    await watching;
    // Well before graceMs (5 s): close finished when the last call did.
    expect(performance.now() - started).toBeLessThan(4_000);
    expect(seen).toEqual([Status.SERVING, Status.NOT_SERVING, Status.SERVING, Status.NOT_SERVING]);
    await transport.close();
  });

  it("Watch of an unknown service answers SERVICE_UNKNOWN", async () => {
    const { server, transport } = await start();
    const health = createClient(Health, transport);
    const abort = new AbortController();
    for await (const m of health.watch({ service: "nope.v1.Nope" }, { signal: abort.signal })) {
      expect(m.status).toBe(Status.SERVICE_UNKNOWN);
      break;
    }
    await server.close({ graceMs: 0 });
    await transport.close();
  });
});
