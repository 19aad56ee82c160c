import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshTransport, type MeshTransport, parseGrpcTimeout } from "../../src/index.js";
import { EchoService } from "../support/echo-service.js";
import { type GrpcJsEchoServer, startGrpcJsEchoServer } from "../support/grpc-js-echo.js";

// 99999999H is a valid grpc-timeout (8 digits) far past Node's 2^31-1 ms timer
// limit: unclamped, the call's deadline timer would fire after 1 ms.
const LONG_MS = parseGrpcTimeout("99999999H") as number;

// The peer is grpc-js, which honours such a deadline: this tests the mesh
// client alone (an over-long incoming deadline on the mesh server is the
// server's own business).
describe("a client deadline past Node's timer limit means effectively none", () => {
  let server: GrpcJsEchoServer;
  let transport: MeshTransport;
  beforeAll(async () => {
    server = await startGrpcJsEchoServer("long");
    transport = createMeshTransport({ target: server.address, logger: false });
  });
  afterAll(async () => {
    await transport.close();
    await server.close();
  });

  it("a unary call with a 99999999H deadline succeeds", async () => {
    const res = await createClient(EchoService, transport).echo(
      { delayMs: 20 },
      { timeoutMs: LONG_MS },
    );
    expect(res.servedBy).toBe("long");
  });

  it("a server stream with a 99999999H deadline delivers every message", async () => {
    const seen: number[] = [];
    for await (const m of createClient(EchoService, transport).echoServerStream(
      { repeat: 3, intervalMs: 10 },
      { timeoutMs: LONG_MS },
    )) {
      seen.push(m.index);
    }
    expect(seen).toEqual([0, 1, 2]);
  });
});
