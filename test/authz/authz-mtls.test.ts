// Authorization end to end with real certificates: a mesh server with a
// workload identity (dev CA, mTLS, client certificates requested) and
// grpc-js clients presenting different SPIFFE identities, or none.

import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CreateOrderResponse } from "../../gen/example/orders/v1/orders_pb.js";
import { formatRecordKey } from "../../src/idempotency/store.js";
import {
  type AuthorizationPolicyOptions,
  createAuthorizationHolder,
  createDevCertificateAuthority,
  createIdentitySource,
  createMemoryIdempotencyStore,
  createMeshServer,
  type DevCertificateAuthority,
  grpcServiceDefinition,
  type IssuedIdentity,
  type MemoryIdempotencyStore,
  type MeshServer,
} from "../../src/index.js";
import {
  countingOrderService,
  createOrderStats,
  ORDER,
  OrderService,
} from "../idempotency/order-fixture.js";
import { captureLogs } from "../observability/log-capture.js";
import { createEchoImpl } from "../support/echo-service.js";
import {
  type EchoGrpcClient,
  EchoGrpcClientConstructor,
  EchoService,
  grpcUnary,
} from "../support/grpc-js-echo.js";

const ECHO = EchoService.typeName;
const ORDERS = OrderService.typeName;
const CREATE = `${ORDERS}/CreateOrder`;

const POLICY: AuthorizationPolicyOptions = {
  rules: [
    {
      name: "deny-web-orders",
      action: "DENY",
      principals: ["spiffe://a/sa/web"],
      methods: [`${ORDERS}/*`],
    },
    {
      name: "workloads",
      action: "ALLOW",
      trustDomains: ["a"],
      methods: [`${ECHO}/*`, `${ORDERS}/*`],
    },
  ],
};

const OrdersClient = grpc.makeGenericClientConstructor(grpcServiceDefinition(OrderService), ORDERS);

interface Unary {
  readonly code: grpc.status;
  readonly details: string;
}

function createOrder(client: grpc.Client, key: string): Promise<Unary> {
  const metadata = new grpc.Metadata();
  metadata.set("idempotency-key", key);
  return new Promise((resolve) => {
    (client as unknown as Record<string, (...args: unknown[]) => void>).createOrder?.(
      ORDER,
      metadata,
      { deadline: Date.now() + 20_000 },
      (err: grpc.ServiceError | null, _res: CreateOrderResponse | undefined) => {
        resolve(err === null ? { code: grpc.status.OK, details: "" } : err);
      },
    );
  });
}

async function echo(client: EchoGrpcClient): Promise<Unary> {
  const out = await grpcUnary(client, { payload: new Uint8Array([7]) }, { timeoutMs: 20_000 });
  return { code: out.status.code, details: out.status.details };
}

describe("authorization with mTLS peer identities and grpc-js clients", () => {
  let ca: DevCertificateAuthority;
  let serverLeaf: IssuedIdentity;
  let checkoutLeaf: IssuedIdentity;
  let webLeaf: IssuedIdentity;
  let server: MeshServer;
  let store: MemoryIdempotencyStore;
  const stats = createOrderStats();
  const holder = createAuthorizationHolder(POLICY);
  const clients: grpc.Client[] = [];
  const logs = captureLogs("info");
  let address: string;

  const credentials = (leaf?: IssuedIdentity) =>
    leaf === undefined
      ? grpc.credentials.createSsl(Buffer.from(ca.ca))
      : grpc.credentials.createSsl(
          Buffer.from(ca.ca),
          Buffer.from(leaf.key),
          Buffer.from(leaf.cert),
        );
  // The server certificate names localhost: an IP as TLS server name is deprecated in node.
  const channel = { "grpc.ssl_target_name_override": "localhost" };
  const echoClient = (leaf?: IssuedIdentity) => {
    const c = new EchoGrpcClientConstructor(address, credentials(leaf), channel);
    clients.push(c);
    return c as unknown as EchoGrpcClient;
  };
  const ordersClient = (leaf?: IssuedIdentity) => {
    const c = new OrdersClient(address, credentials(leaf), channel);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    serverLeaf = await ca.issue({ spiffeId: "/sa/orders", dnsNames: ["localhost"] });
    checkoutLeaf = await ca.issue({ spiffeId: "/sa/checkout" });
    webLeaf = await ca.issue({ spiffeId: "/sa/web" });
    store = createMemoryIdempotencyStore();
    server = createMeshServer({
      routes: (r) => {
        r.service(EchoService, createEchoImpl());
        r.service(OrderService, countingOrderService("r1", stats));
      },
      identity: {
        source: createIdentitySource({ ...serverLeaf, logger: false }),
        clientCertificate: "request",
      },
      authorization: holder,
      idempotency: { store },
      logger: logs.logger,
    });
    address = (await server.listen()).address;
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.close({ graceMs: 0 });
    await ca?.close();
  });

  it("allows a client certificate the policy names", async () => {
    expect((await echo(echoClient(checkoutLeaf))).code).toBe(grpc.status.OK);
  });

  it("denies a client certificate a DENY rule names: PERMISSION_DENIED naming the rule", async () => {
    const web = ordersClient(webLeaf);
    const out = await createOrder(web, "web-1");
    expect(out.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(out.details).toContain("deny-web-orders");
    expect(out.details).toContain("spiffe://a/sa/web");
    // The same peer may still call what the DENY rule does not cover.
    expect((await echo(echoClient(webLeaf))).code).toBe(grpc.status.OK);
    // The call line names the peer and the rule that decided.
    await expect
      .poll(() => logs.finished("server").filter((l) => l["peer.identity"] === "spiffe://a/sa/web"))
      .toHaveLength(2);
    const lines = logs.finished("server").filter((l) => l["peer.identity"] === "spiffe://a/sa/web");
    expect(
      lines.map((l) => [l["grpc.method"], l["grpc.code"], l["authz.decision"], l["authz.rule"]]),
    ).toEqual([
      ["CreateOrder", "PermissionDenied", "deny", "deny-web-orders"],
      ["Echo", "OK", "allow", "workloads"],
    ]);
  });

  it("answers UNAUTHENTICATED to a client without a certificate", async () => {
    const out = await echo(echoClient());
    expect(out.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(out.details).toContain("workloads");
  });

  it("a denied keyed call leaves no idempotency record; an allowed one does", async () => {
    const before = stats.executions;
    const denied = await createOrder(ordersClient(webLeaf), "shared-key");
    expect(denied.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(stats.executions).toBe(before);
    expect(
      await store.get(formatRecordKey("spiffe://a/sa/web", CREATE, "shared-key")),
    ).toBeUndefined();

    const allowed = await createOrder(ordersClient(checkoutLeaf), "shared-key");
    expect(allowed.code).toBe(grpc.status.OK);
    expect(stats.executions).toBe(before + 1);
    // Keyed by the caller's SPIFFE ID (the default principal with mTLS).
    expect(
      await store.get(formatRecordKey("spiffe://a/sa/checkout", CREATE, "shared-key")),
    ).toMatchObject({ state: "completed" });
    expect(
      await store.get(formatRecordKey("spiffe://a/sa/web", CREATE, "shared-key")),
    ).toBeUndefined();
  });

  it("swaps the policy under load: no allowed call fails, no denied call gets in", async () => {
    const variants: AuthorizationPolicyOptions[] = [
      POLICY,
      {
        rules: [
          {
            name: "deny-web-orders-v2",
            action: "DENY",
            principals: ["*/sa/web"],
            methods: [CREATE],
          },
          {
            name: "checkout-echo",
            action: "ALLOW",
            principals: ["a/sa/checkout"],
            methods: [`${ECHO}/Echo`],
          },
        ],
      },
      {
        defaultAction: "allow",
        rules: [
          {
            name: "deny-web",
            action: "DENY",
            principals: ["spiffe://a/sa/web"],
            notMethods: [`${ECHO}/*`],
          },
        ],
      },
    ];
    const checkout = Array.from({ length: 4 }, () => echoClient(checkoutLeaf));
    const web = Array.from({ length: 2 }, () => ordersClient(webLeaf));
    let stop = false;
    const counts = { allowed: 0, allowedFailed: 0, denied: 0, deniedOk: 0 };
    const failures: Unary[] = [];
    const allowedLoop = async (c: EchoGrpcClient) => {
      while (!stop) {
        const out = await echo(c);
        if (out.code === grpc.status.OK) counts.allowed++;
        else {
          counts.allowedFailed++;
          failures.push(out);
        }
      }
    };
    let n = 0;
    const deniedLoop = async (c: grpc.Client) => {
      while (!stop) {
        const out = await createOrder(c, `swap-${n++}`);
        if (out.code === grpc.status.PERMISSION_DENIED) counts.denied++;
        else {
          counts.deniedOk++;
          failures.push(out);
        }
      }
    };
    const loops = [
      ...checkout.flatMap((c) => [allowedLoop(c), allowedLoop(c), allowedLoop(c)]),
      ...web.flatMap((c) => [deniedLoop(c), deniedLoop(c)]),
    ];
    const executions = stats.executions;
    const swaps = 20;
    for (let i = 1; i <= swaps; i++) {
      const seen = counts.allowed;
      const seenDenied = counts.denied;
      await expect
        .poll(() => counts.allowed > seen + 4 && counts.denied > seenDenied, { timeout: 20_000 })
        .toBe(true);
      holder.set(variants[i % variants.length] as AuthorizationPolicyOptions);
    }
    stop = true;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(counts.allowedFailed).toBe(0);
    expect(counts.deniedOk).toBe(0);
    expect(counts.allowed).toBeGreaterThan(swaps * 5);
    expect(counts.denied).toBeGreaterThan(swaps);
    expect(stats.executions).toBe(executions);
  }, 120_000);
});
