// A minimal mesh client: `npx tsx examples/minimal-client.ts [host:port]`.
import { createClient } from "@connectrpc/connect";
import { createMeshTransport } from "../src/index.js";
import { OrderService } from "./order-service.js";

await using transport = createMeshTransport({ target: process.argv[2] ?? "127.0.0.1:50051" });
const orders = createClient(OrderService, transport);
const { order } = await orders.createOrder(
  { customerId: "c-1", items: [{ sku: "book", quantity: 2, unitPriceCents: 1250n }] },
  { timeoutMs: 5_000 },
);
console.log(`created ${order?.id} for ${order?.totalCents}¢, served by ${order?.servedBy}`);
