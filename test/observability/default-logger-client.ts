// Child program of default-logger.test.ts: one call through a mesh transport
// with no logger given, so only the default logger decides what is printed.
// `node --import tsx default-logger-client.ts <address> ok|fail`
import { createClient } from "@connectrpc/connect";
import { OrderService } from "../../examples/order-service.js";
import { createMeshTransport } from "../../src/index.js";

const [address = "", mode = "ok"] = process.argv.slice(2);
const transport = createMeshTransport({ target: address, defaultTimeoutMs: 10_000, retry: false });
const orders = createClient(OrderService, transport);
try {
  if (mode === "ok") {
    await orders.createOrder({ customerId: "c-1", items: [{ sku: "a", quantity: 1 }] });
  } else {
    // The test's server implements no GetOrder: UNIMPLEMENTED, logged at error.
    await orders.getOrder({ id: "x" }).catch(() => undefined);
  }
} finally {
  await transport.close();
}
