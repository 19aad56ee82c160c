// A minimal mesh server: `npx tsx examples/minimal-server.ts [port]`.
import { createMeshServer } from "../src/index.js";
import { createOrderService, OrderService } from "./order-service.js";

const server = createMeshServer({
  routes: (router) => router.service(OrderService, createOrderService("minimal")),
});
const { address } = await server.listen({
  host: "127.0.0.1",
  port: Number(process.argv[2] ?? 50051),
});
console.log(`listening on ${address}; Ctrl-C drains and stops`);
process.once("SIGINT", () => void server.close({ graceMs: 5_000 }));
process.once("SIGTERM", () => void server.close({ graceMs: 5_000 }));
