// The peer identity as the rest of the server sees it: the call log line's
// peer.identity, and idempotency keys scoped by the caller's SPIFFE ID by default.
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentitySource,
  type IssuedIdentity,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import {
  countingOrderService,
  createOrderStats,
  ORDER,
  OrderService,
} from "../idempotency/order-fixture.js";
import { captureLogs } from "../observability/log-capture.js";

describe("peer identity in the call log and as the idempotency principal", () => {
  let ca: DevCertificateAuthority;
  let leaves: Record<"orders" | "checkout" | "billing", IssuedIdentity>;
  const sources: IdentitySource[] = [];
  const transports: MeshTransport[] = [];
  let server: MeshServer;
  const logs = captureLogs("info");
  const stats = createOrderStats();
  let address: string;

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    const [orders, checkout, billing] = await Promise.all([
      ca.issue({ spiffeId: "/ns/shop/sa/orders" }),
      ca.issue({ spiffeId: "/ns/shop/sa/checkout" }),
      ca.issue({ spiffeId: "/ns/shop/sa/billing" }),
    ]);
    leaves = { orders, checkout, billing } as typeof leaves;
    const source = createIdentitySource({ ...orders, logger: false });
    sources.push(source);
    server = createMeshServer({
      routes: (r) => r.service(OrderService, countingOrderService("r1", stats)),
      identity: { source },
      logger: logs.logger,
    });
    address = (await server.listen()).address;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await server?.close({ graceMs: 0 });
    for (const s of sources) s.close();
    await ca?.close();
  });

  function clientAs(leaf: IssuedIdentity) {
    const source = createIdentitySource({ ...leaf, logger: false });
    sources.push(source);
    const t = createMeshTransport({ target: address, identity: source, logger: false });
    transports.push(t);
    return createClient(OrderService, t);
  }

  it("logs the caller's SPIFFE ID as peer.identity", async () => {
    await clientAs(leaves.checkout).createOrder(ORDER);
    const line = logs
      .finished("server")
      .find((l) => l["grpc.method"] === "CreateOrder" && l["peer.identity"] !== undefined);
    expect(line?.["peer.identity"]).toBe("spiffe://a/ns/shop/sa/checkout");
    expect(line?.["peer.address"]).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("scopes idempotency keys by the caller's identity: one key, two callers, two orders", async () => {
    const checkout = clientAs(leaves.checkout);
    const billing = clientAs(leaves.billing);
    const key = "7c1f7a2e-4c39-4a53-9a57-000000000001";
    const header = { "idempotency-key": key };
    const before = stats.executions;
    const a1 = await checkout.createOrder(ORDER, { headers: header });
    const a2 = await checkout.createOrder(ORDER, { headers: header });
    const b1 = await billing.createOrder(ORDER, { headers: header });
    // The same caller replays its own outcome; another caller with the same
    // key is another principal, so its call runs.
    expect(a2.order?.id).toBe(a1.order?.id);
    expect(b1.order?.id).not.toBe(a1.order?.id);
    expect(stats.executions - before).toBe(2);
  });
});
