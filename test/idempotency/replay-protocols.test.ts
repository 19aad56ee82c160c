import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, createClient, createContextValues, type Transport } from "@connectrpc/connect";
import {
  connectNodeAdapter,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serverCallKey } from "../../src/call/server-call.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../../src/idempotency/idempotency-key.js";
import { createIdempotencyInterceptor } from "../../src/idempotency/server-interceptor.js";
import {
  callOutcome,
  countingOrderService,
  createOrderStats,
  keyed,
  ORDER,
  OrderService,
  type OrderStats,
  type Replica,
  startReplica,
} from "./order-fixture.js";

// An order with many items answers with more than 1 KiB, which Connect
// compresses (gzip) for clients that accept it.
const BIG_ORDER = {
  customerId: "c-big",
  items: Array.from({ length: 60 }, (_, i) => ({
    sku: `sku-${i}-${"x".repeat(10)}`,
    quantity: i + 1,
    unitPriceCents: 100n,
  })),
};

type Transports = Record<string, (url: string) => Transport>;
const transports: Transports = {
  gRPC: (url) => createGrpcTransport({ baseUrl: url }),
  "gRPC (no compression)": (url) => createGrpcTransport({ baseUrl: url, acceptCompression: [] }),
  "gRPC-Web": (url) => createGrpcWebTransport({ baseUrl: url, httpVersion: "2" }),
  Connect: (url) => createConnectTransport({ baseUrl: url, httpVersion: "2" }),
  "Connect JSON": (url) =>
    createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: false }),
};

async function replayOverEachProtocol(
  url: string,
  stats: OrderStats,
  tag: string,
  gateHeader: string | null,
) {
  for (const [name, make] of Object.entries(transports)) {
    const client = createClient(OrderService, make(url));
    for (const order of [ORDER, BIG_ORDER]) {
      const before = stats.executions;
      const key = `${tag}-${name.replace(/\W+/g, "_")}-${order.items.length}`;
      const first = keyed(key);
      const r1 = await client.createOrder(order, first.options);
      const again = keyed(key);
      const r2 = await client.createOrder(order, again.options);
      expect(r2, name).toEqual(r1);
      expect(again.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER), name).toBe("true");
      expect(again.seen.header?.get("x-order-served-by"), name).toBe("r1");
      expect(again.seen.trailer?.get("x-order-trailer"), name).toBe("t-r1");
      expect(again.seen.header?.get("x-gate"), name).toBe(gateHeader);
      expect(stats.executions - before, name).toBe(1);
    }
    // Replayed errors keep their code over every protocol too.
    const bad = `${tag}-${name.replace(/\W+/g, "_")}-bad`;
    for (let i = 0; i < 2; i++) {
      const out = await callOutcome(client.createOrder({ customerId: "" }, keyed(bad).options));
      expect(!out.ok && out.error.code, name).toBe(Code.InvalidArgument);
      expect(!out.ok && out.error.rawMessage, name).toBe("customer_id is required");
    }
  }
}

describe("idempotency replays over gRPC, gRPC-Web and Connect, small and compressed", () => {
  describe("mesh server (protocol headers reconstructed for the replay)", () => {
    let stats: OrderStats;
    let replica: Replica;
    beforeAll(async () => {
      stats = createOrderStats();
      // The mesh server's built-in idempotency interceptor, defaults only.
      replica = await startReplica(countingOrderService("r1", stats));
    });
    afterAll(() => replica.server.close({ graceMs: 0 }));

    it("idempotency: replays are identical over every protocol", async () => {
      await replayOverEachProtocol(replica.bound.url, stats, "mesh", null);
    });
  });

  describe("server exposing the handler context's headers on ServerCall", () => {
    let stats: OrderStats;
    let server: http2.Http2Server;
    let url: string;
    beforeAll(async () => {
      stats = createOrderStats();
      const handler = connectNodeAdapter({
        routes: (r) => r.service(OrderService, countingOrderService("r1", stats)),
        interceptors: [createIdempotencyInterceptor()],
        // With compression off on the server, a guessed grpc-encoding would
        // be wrong: the replay must use the context's own headers.
        acceptCompression: [],
        contextValues: () => createContextValues(),
        requestGate(ctx) {
          // Only the context's own header object carries this into a replay.
          ctx.responseHeader.set("x-gate", "set-by-gate");
          ctx.values.set(serverCallKey, {
            peerAddress: "test",
            timeoutMs: ctx.timeoutMs,
            signal: ctx.signal,
            responseHeader: ctx.responseHeader,
            responseTrailer: ctx.responseTrailer,
          } as never);
        },
      });
      server = http2.createServer(handler);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Sessions held open by clients are not ours to wait for.
          setTimeout(resolve, 200).unref();
        }),
    );

    it("idempotency: replays write into the context's headers, exact for any server settings", async () => {
      await replayOverEachProtocol(url, stats, "exact", "set-by-gate");
    });
  });
});
