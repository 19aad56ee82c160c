import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createOrderService, OrderService } from "../../examples/order-service.js";
import {
  createMeshRegistry,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
} from "../../src/index.js";
import { waitFor } from "../support/wait-for.js";

describe("rolling restart through the embedded mesh registry", () => {
  it("restarting 3 replicas one by one under load fails 0 calls", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mesh-rolling-"));
    const start = async (name: string): Promise<MeshServer> => {
      // Each replica has its own registry instance on the shared directory,
      // as separate processes would.
      const registry = createMeshRegistry({ dir, leaseTtlMs: 2_000 });
      const server = createMeshServer({
        routes: (r) => r.service(OrderService, createOrderService(name)),
        registration: { registry, service: "orders", deregisterDelayMs: 300 },
        logger: false,
      });
      await server.listen();
      const close = server.close.bind(server);
      return Object.assign(server, {
        close: async (o?: { graceMs?: number }) => {
          await close(o);
          await registry.close();
        },
      });
    };
    const replicas = [await start("r0-v1"), await start("r1-v1"), await start("r2-v1")];
    const clientRegistry = createMeshRegistry({ dir });
    const transport = createMeshTransport({
      target: "mesh:///orders",
      registries: [clientRegistry],
      logger: false,
    });
    const orders = createClient(OrderService, transport);
    const served = new Map<string, number>();
    const failures: string[] = [];
    let stop = false;
    const worker = async () => {
      while (!stop) {
        try {
          const res = await orders.createOrder(
            { customerId: "c", items: [{ sku: "s", quantity: 1, unitPriceCents: 1n }] },
            { timeoutMs: 2_000 },
          );
          const by = res.order?.servedBy ?? "?";
          served.set(by, (served.get(by) ?? 0) + 1);
        } catch (e) {
          failures.push(String(e));
        }
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // The load is flowing once every replica has answered a call.
    await expect.poll(() => served.size, { timeout: 10_000 }).toBe(replicas.length);
    for (let i = 0; i < replicas.length; i++) {
      // Stop the old process first (the other two keep serving), then start its successor.
      await (replicas[i] as MeshServer).close({ graceMs: 2_000 });
      replicas[i] = await start(`r${i}-v2`);
      // The successor must take traffic before the next replica goes.
      await waitFor(() => (served.get(`r${i}-v2`) ?? 0) > 0, 10_000);
    }
    stop = true;
    await load;
    expect(failures).toEqual([]);
    for (const name of ["r0-v2", "r1-v2", "r2-v2"]) {
      expect(served.get(name) ?? 0).toBeGreaterThan(0);
    }
    await transport.close();
    await Promise.all(replicas.map((r) => r.close({ graceMs: 0 })));
    await clientRegistry.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
