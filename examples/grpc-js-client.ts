// A plain @grpc/grpc-js client calling a mesh server:
// `npx tsx examples/minimal-server.ts` in one terminal, then
// `npx tsx examples/grpc-js-client.ts [host:port]` in another.
// grpc-js needs a service definition; grpcServiceDefinition builds it from the
// protobuf-es descriptor, so there is no second code generator.
import * as grpc from "@grpc/grpc-js";
import type { CreateOrderResponse } from "../gen/example/orders/v1/orders_pb.js";
import { grpcServiceDefinition } from "../src/index.js";
import { OrderService } from "./order-service.js";

const Client = grpc.makeGenericClientConstructor(
  grpcServiceDefinition(OrderService),
  OrderService.typeName,
);
const client = new Client(process.argv[2] ?? "127.0.0.1:50051", grpc.credentials.createInsecure());

const metadata = new grpc.Metadata();
// Mesh servers de-duplicate keyed calls: repeat this call and the order is created once.
metadata.set("idempotency-key", "example-order-1");
// Mesh servers continue a W3C trace sent by any client.
metadata.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

const deadline = new Date(Date.now() + 1_000);
(client as unknown as Record<string, (...args: unknown[]) => void>).createOrder?.(
  { customerId: "c-1", items: [{ sku: "book", quantity: 1, unitPriceCents: 1250n }] },
  metadata,
  { deadline },
  (err: grpc.ServiceError | null, res: CreateOrderResponse | undefined) => {
    if (err !== null) {
      console.error(`CreateOrder failed: ${grpc.status[err.code]} ${err.details}`);
      process.exitCode = 1;
    } else {
      console.log(
        `grpc-js created ${res?.order?.id} for ${res?.order?.totalCents}¢, served by ${res?.order?.servedBy}`,
      );
    }
    client.close();
  },
);
