// `npm start`: a mesh server and a mesh client in one process making real
// gRPC calls over loopback HTTP/2. The full fault-injection demo (registry,
// 3 replicas, retries, breakers) grows here as those features land.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { pino } from "pino";
import { OrderStatus } from "../gen/example/orders/v1/orders_pb.js";
import { createMeshServer, createMeshTransport } from "../src/index.js";
import { createOrderService, OrderService } from "./order-service.js";

// JSON logs (one line per finished call, with trace_id/span_id) go to a file,
// so the terminal shows what a person wants to read.
mkdirSync(".tmp", { recursive: true });
const logPath = join(".tmp", "demo-logs.jsonl");
const logger = pino({ level: "info" }, pino.destination({ dest: logPath, sync: true }));

const server = createMeshServer({
  routes: (router) => router.service(OrderService, createOrderService("replica-1")),
  logger,
});
const { address } = await server.listen({ port: 0 });
console.log(`OrderService listening on ${address} (gRPC, gRPC-Web and Connect on one port)`);

const transport = createMeshTransport({ target: address, defaultTimeoutMs: 2_000, logger });
const orders = createClient(OrderService, transport);

const watch = new AbortController();
const watched: string[] = [];
const watching = (async () => {
  try {
    for await (const { order } of orders.watchOrders(
      { customerId: "c-42" },
      { signal: watch.signal, timeoutMs: 0 },
    )) {
      watched.push(`${order?.id.slice(0, 8)} ${OrderStatus[order?.status ?? 0]}`);
    }
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Canceled) throw e;
  }
})();
// Wait until the server is serving the watch before making changes.
while (server.inFlight < 1) await new Promise((r) => setTimeout(r, 5));
await new Promise((r) => setTimeout(r, 20));

const started = performance.now();
const ids: string[] = [];
for (let i = 0; i < 5; i++) {
  const { order } = await orders.createOrder({
    customerId: "c-42",
    items: [{ sku: `sku-${i}`, quantity: i + 1, unitPriceCents: 250n }],
  });
  ids.push(order?.id ?? "");
  console.log(
    `CreateOrder → ${order?.id} total=${order?.totalCents}¢ served_by=${order?.servedBy}`,
  );
}
const got = await orders.getOrder({ id: ids[0] ?? "" });
console.log(`GetOrder    → ${got.order?.id} status=${OrderStatus[got.order?.status ?? 0]}`);
const cancelled = await orders.cancelOrder({ id: ids[1] ?? "", reason: "changed my mind" });
console.log(
  `CancelOrder → ${cancelled.order?.id} status=${OrderStatus[cancelled.order?.status ?? 0]}`,
);
try {
  await orders.getOrder({ id: "no-such-order" });
} catch (e) {
  const err = ConnectError.from(e);
  console.log(`GetOrder(no-such-order) → ${Code[err.code]}: ${err.rawMessage}`);
}
try {
  await orders.createOrder({ customerId: "c-42", items: [] }, { timeoutMs: 500 });
} catch (e) {
  const err = ConnectError.from(e);
  console.log(`CreateOrder(no items) → ${Code[err.code]}: ${err.rawMessage}`);
}
await new Promise((r) => setTimeout(r, 50));
watch.abort();
await watching;
console.log(`WatchOrders saw ${watched.length} changes: ${watched.join(", ")}`);
console.log(`9 calls in ${(performance.now() - started).toFixed(1)} ms; JSON logs in ${logPath}`);

await transport.close();
await server.close({ graceMs: 1_000 });
const ok = watched.length === 6 && ids.every((id) => id !== "");
console.log(ok ? "demo: OK" : "demo: FAILED");
process.exit(ok ? 0 : 1);
