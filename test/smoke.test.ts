import { createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createMeshServer, createMeshTransport } from "../src/index.js";
import { createEchoImpl, EchoService } from "./support/echo-service.js";

describe("mesh server and transport", () => {
  it("serves unary and streaming echo over HTTP/2", async () => {
    const server = createMeshServer({ routes: (r) => r.service(EchoService, createEchoImpl()) });
    const { address } = await server.listen();
    const transport = createMeshTransport({ target: address });
    const client = createClient(EchoService, transport);
    const res = await client.echo({ payload: new Uint8Array([1, 2, 3]) }, { timeoutMs: 5000 });
    expect([...res.payload]).toEqual([1, 2, 3]);
    expect(res.timeoutMs).toBeGreaterThan(4000);
    expect(res.timeoutMs).toBeLessThanOrEqual(5000);
    const got: number[] = [];
    for await (const m of client.echoServerStream({ payload: new Uint8Array([9]), repeat: 3 })) {
      got.push(m.index);
    }
    expect(got).toEqual([0, 1, 2]);
    await transport.close();
    await server.close();
  });
});
