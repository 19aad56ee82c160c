import type { MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  CreateOrderRequestSchema,
  CreateOrderResponse,
} from "../../gen/example/orders/v1/orders_pb.js";
import { ErrorInfoSchema } from "../../src/idempotency/error-info.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../../src/idempotency/idempotency-key.js";
import { grpcMethodDefinition } from "../support/grpc-js-echo.js";
import { decodeRpcStatus, findDetail } from "../support/grpc-js-rpc-status.js";
import {
  countingOrderService,
  createOrderStats,
  ORDER,
  OrderService,
  type OrderStats,
  type Replica,
  startReplica,
} from "./order-fixture.js";

const definition = { createOrder: grpcMethodDefinition(OrderService.method.createOrder) };
const Client = grpc.makeGenericClientConstructor(definition, OrderService.typeName);

interface GrpcOutcome {
  response: CreateOrderResponse | undefined;
  error: grpc.ServiceError | undefined;
  header: grpc.Metadata | undefined;
  trailer: grpc.Metadata | undefined;
}

function createOrder(
  client: grpc.Client,
  request: MessageInitShape<typeof CreateOrderRequestSchema>,
  key: string,
): Promise<GrpcOutcome> {
  const metadata = new grpc.Metadata();
  metadata.set("idempotency-key", key);
  return new Promise((resolve) => {
    const out: GrpcOutcome = {
      response: undefined,
      error: undefined,
      header: undefined,
      trailer: undefined,
    };
    const call = (
      client as unknown as {
        createOrder: (
          r: unknown,
          m: grpc.Metadata,
          o: grpc.CallOptions,
          cb: grpc.requestCallback<CreateOrderResponse>,
        ) => grpc.ClientUnaryCall;
      }
    ).createOrder(request, metadata, { deadline: Date.now() + 5_000 }, (err, res) => {
      out.error = err ?? undefined;
      out.response = res;
    });
    call.on("metadata", (m) => {
      out.header = m;
    });
    call.on("status", (s) => {
      out.trailer = s.metadata;
      // The callback runs before 'status'; resolve once both are in.
      setImmediate(() => resolve(out));
    });
  });
}

describe("idempotency with a grpc-js client", () => {
  let stats: OrderStats;
  let replica: Replica;
  let client: grpc.Client;
  beforeAll(async () => {
    stats = createOrderStats();
    // The mesh server's built-in idempotency interceptor, defaults only.
    replica = await startReplica(countingOrderService("r1", stats));
    client = new Client(replica.bound.address, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client.close();
    await replica.server.close({ graceMs: 0 });
  });

  it("idempotency: a grpc-js client sending idempotency-key gets one execution and byte-identical replays", async () => {
    const first = await createOrder(client, ORDER, "grpc-js-key");
    expect(first.error).toBeUndefined();
    expect(first.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toEqual([]);
    const again = await createOrder(client, ORDER, "grpc-js-key");
    expect(again.error).toBeUndefined();
    expect(again.response).toEqual(first.response);
    expect(again.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toEqual(["true"]);
    expect(again.header?.get("x-order-served-by")).toEqual(["r1"]);
    expect(again.trailer?.get("x-order-trailer")).toEqual(["t-r1"]);
    expect(stats.executions).toBe(1);
  });

  it("idempotency: concurrent grpc-js duplicates run the handler once", async () => {
    stats.executions = 0;
    stats.delayMs = 150;
    try {
      const results = await Promise.all(
        Array.from({ length: 4 }, () => createOrder(client, ORDER, "grpc-js-concurrent")),
      );
      expect(results.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
      expect(new Set(results.map((r) => r.response?.order?.id)).size).toBe(1);
      expect(stats.executions).toBe(1);
    } finally {
      stats.delayMs = 0;
    }
  });

  it("idempotency: a grpc-js client decodes the IDEMPOTENCY_KEY_REUSED ErrorInfo detail", async () => {
    await createOrder(client, ORDER, "grpc-js-reused");
    const reused = await createOrder(client, { ...ORDER, customerId: "c-9" }, "grpc-js-reused");
    expect(reused.error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    const info = findDetail(decodeRpcStatus(reused.trailer), ErrorInfoSchema);
    expect(info).toMatchObject({ reason: "IDEMPOTENCY_KEY_REUSED", domain: "connect-mesh" });
  });
});
