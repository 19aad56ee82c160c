import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrderService, OrderService } from "../../examples/order-service.js";
import { createMeshServer, type MeshServer } from "../../src/index.js";

const run = promisify(execFile);
const tsx = (file: string, ...args: string[]) =>
  run(process.execPath, ["--import", "tsx", file, ...args], { timeout: 30_000 });

describe("examples: minimal mesh client and a grpc-js client against a mesh server", () => {
  let server: MeshServer;
  let address: string;
  beforeAll(async () => {
    server = createMeshServer({
      routes: (r) => r.service(OrderService, createOrderService("example-server")),
      logger: false,
    });
    address = (await server.listen()).address;
  });
  afterAll(() => server.close({ graceMs: 0 }));

  it("examples/minimal-client.ts creates an order", async () => {
    const { stdout } = await tsx("examples/minimal-client.ts", address);
    expect(stdout).toMatch(/created [0-9a-f-]{36} for 2500¢, served by example-server/);
  });

  it("examples/grpc-js-client.ts creates an order once, however often it runs (idempotency key)", async () => {
    const first = await tsx("examples/grpc-js-client.ts", address);
    const second = await tsx("examples/grpc-js-client.ts", address);
    const id = /created ([0-9a-f-]{36})/.exec(first.stdout)?.[1];
    expect(id).toBeDefined();
    expect(second.stdout).toContain(`created ${id}`);
  });
});
