import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshTransport, type MeshTransport } from "../../src/index.js";
import { createFakeClock, type FakeClock } from "../../src/testing/fake-clock.js";
import { EchoService } from "../support/echo-service.js";
import { type GrpcJsEchoServer, startGrpcJsEchoServer } from "../support/grpc-js-echo.js";

// A streaming call's deadline is on the transport's clock, as a unary call's:
// Connect's runStreamingCall (which mesh streams no longer go through) armed a
// raw timer instead.
describe("a stream's deadline runs on the transport's clock", () => {
  let server: GrpcJsEchoServer;
  let clock: FakeClock;
  let transport: MeshTransport;
  beforeAll(async () => {
    server = await startGrpcJsEchoServer("clocked");
    clock = createFakeClock(1_000);
    transport = createMeshTransport({
      target: server.address,
      logger: false,
      clock,
      retry: false,
    });
  });
  afterAll(async () => {
    await transport.close();
    await server.close();
  });

  it("fails a server stream with DEADLINE_EXCEEDED once the fake clock passes its deadline", async () => {
    const seen: number[] = [];
    const read = (async () => {
      for await (const m of createClient(EchoService, transport).echoServerStream(
        // 100 messages 50 ms apart: 5 s of real time, far past this test's end.
        { repeat: 100, intervalMs: 50 },
        { timeoutMs: 60_000 },
      )) {
        seen.push(m.index);
      }
    })();
    await expect.poll(() => seen.length).toBeGreaterThan(0);
    clock.advance(61_000);
    const error = await read.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(seen.length).toBeLessThan(100);
  });
});
