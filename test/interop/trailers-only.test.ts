// Interop: a mesh server answers an error that comes before any response
// message as gRPC's Trailers-Only response (one HEADERS frame with
// END_STREAM), as grpc-go, grpc-java and grpc-js servers do, so that
// gRFC A6 clients (grpc-js retry policies) can retry it.

import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  type GetOrderRequest,
  GetOrderRequestSchema,
  type GetOrderResponse,
  GetOrderResponseSchema,
  type WatchOrdersRequest,
  WatchOrdersRequestSchema,
  WatchOrdersResponseSchema,
} from "../../gen/example/orders/v1/orders_pb.js";
import { EchoService } from "../../gen/test/v1/echo_pb.js";
import { createMeshServer } from "../../src/index.js";
import { OrderService, startScriptedOrders } from "../support/scripted-orders.js";

interface WireResponse {
  readonly headers: http2.IncomingHttpHeaders;
  readonly headersEndStream: boolean;
  readonly dataBytes: number;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
}

/** rawGetOrder sends one GetOrder over node:http2 and records the frames' shape. */
async function rawGetOrder(address: string, contentType: string): Promise<WireResponse> {
  const session = http2.connect(`http://${address}`);
  try {
    const msg = toBinary(GetOrderRequestSchema, create(GetOrderRequestSchema, { id: "o-1" }));
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    frame.set(msg, 5);
    const req = session.request({
      ":method": "POST",
      ":path": "/example.orders.v1.OrderService/GetOrder",
      "content-type": contentType,
      te: "trailers",
    });
    let headers: http2.IncomingHttpHeaders = {};
    let headersEndStream = false;
    let dataBytes = 0;
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on("response", (h, flags) => {
      headers = h;
      headersEndStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.on("data", (d: Buffer) => {
      dataBytes += d.length;
    });
    req.on("trailers", (t) => {
      trailers = t;
    });
    req.end(frame);
    await new Promise((resolve) => req.on("close", resolve));
    return { headers, headersEndStream, dataBytes, trailers };
  } finally {
    session.close();
  }
}

const GET_ORDER_PATH = "/example.orders.v1.OrderService/GetOrder";

/** grpcJsGetOrder calls GetOrder with a grpc-js client configured by `serviceConfig`. */
function grpcJsGetOrder(
  client: grpc.Client,
): Promise<{ response?: GetOrderResponse; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      GET_ORDER_PATH,
      (m: GetOrderRequest) => Buffer.from(toBinary(GetOrderRequestSchema, m)),
      (b: Buffer) => fromBinary(GetOrderResponseSchema, b),
      create(GetOrderRequestSchema, { id: "o-1" }),
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (error, response) => resolve(error ? { error } : response === undefined ? {} : { response }),
    );
  });
}

const retryConfig = {
  methodConfig: [
    {
      name: [{ service: "example.orders.v1.OrderService" }],
      retryPolicy: {
        maxAttempts: 3,
        initialBackoff: "0.01s",
        maxBackoff: "0.05s",
        backoffMultiplier: 2,
        retryableStatusCodes: ["UNAVAILABLE"],
      },
    },
  ],
};

describe("Trailers-Only error responses (gRPC protocol)", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("an error before any message is one HEADERS frame with END_STREAM holding headers and status", async () => {
    const s = await startScriptedOrders("s", () => ({
      code: Code.Unavailable,
      trailers: { "x-trailer": "t" },
    }));
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const res = await rawGetOrder(s.address, "application/grpc");
    expect(res.headersEndStream).toBe(true);
    expect(res.headers[":status"]).toBe(200);
    expect(res.headers["content-type"]).toBe("application/grpc+proto");
    expect(res.headers["grpc-status"]).toBe(String(Code.Unavailable));
    // grpc-message is percent-encoded on the wire.
    expect(decodeURIComponent(String(res.headers["grpc-message"]))).toBe("scripted Unavailable #1");
    expect(res.headers["x-trailer"]).toBe("t");
    expect(res.dataBytes).toBe(0);
    expect(res.trailers).toBeUndefined();
  });

  it("a key set both as response header and as trailer keeps both values in the Trailers-Only block", async () => {
    const server = createMeshServer({
      logger: false,
      routes: (router) =>
        router.service(OrderService, {
          getOrder(_req, ctx) {
            ctx.responseHeader.set("x-both", "from-header");
            throw new ConnectError("down", Code.Unavailable, { "x-both": "from-trailer" });
          },
        }),
    });
    const bound = await server.listen({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => server.close({ graceMs: 0 }));
    const res = await rawGetOrder(bound.address, "application/grpc");
    expect(res.headersEndStream).toBe(true);
    expect(res.headers["x-both"]).toBe("from-header, from-trailer");
    expect(res.headers["grpc-status"]).toBe(String(Code.Unavailable));
  });

  it("a server stream failing before its first message ends as Trailers-Only; grpc-js sees the code and no message", async () => {
    const server = createMeshServer({
      logger: false,
      routes: (router) =>
        router.service(OrderService, {
          // biome-ignore lint/correctness/useYield: fails before the first message on purpose
          async *watchOrders() {
            throw new ConnectError("no such customer", Code.NotFound);
          },
        }),
    });
    const bound = await server.listen({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => server.close({ graceMs: 0 }));
    const client = new grpc.Client(bound.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const outcome = await new Promise<{ messages: number; error?: grpc.ServiceError }>(
      (resolve) => {
        let messages = 0;
        const call = client.makeServerStreamRequest(
          "/example.orders.v1.OrderService/WatchOrders",
          (m: WatchOrdersRequest) => Buffer.from(toBinary(WatchOrdersRequestSchema, m)),
          (b: Buffer) => fromBinary(WatchOrdersResponseSchema, b),
          create(WatchOrdersRequestSchema, { customerId: "c-1" }),
        );
        call.on("data", () => {
          messages++;
        });
        call.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
        call.on("end", () => resolve({ messages }));
      },
    );
    expect(outcome.messages).toBe(0);
    expect(outcome.error?.code).toBe(grpc.status.NOT_FOUND);
    expect(outcome.error?.details).toBe("no such customer");
  });

  it("a client stream failed before its end is answered Trailers-Only and the still-sending client is told to stop (RST_STREAM NO_ERROR)", async () => {
    const server = createMeshServer({
      logger: false,
      routes: (router) =>
        router.service(EchoService, {
          async echoClientStream(requests) {
            for await (const _ of requests) {
              throw new ConnectError("first message rejected", Code.InvalidArgument);
            }
            return {};
          },
        }),
    });
    const bound = await server.listen({ host: "127.0.0.1", port: 0 });
    cleanups.push(() => server.close({ graceMs: 0 }));
    const session = http2.connect(`http://${bound.address}`);
    cleanups.push(() => session.destroy());
    const req = session.request({
      ":method": "POST",
      ":path": "/test.v1.EchoService/EchoClientStream",
      "content-type": "application/grpc",
      te: "trailers",
    });
    let endStream = false;
    let status: unknown;
    req.on("response", (h, flags) => {
      status = h["grpc-status"];
      endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    req.resume();
    // One empty message, and the request stays open (no END_STREAM).
    req.write(Buffer.alloc(5));
    const closed = await new Promise<number | "still open">((resolve) => {
      const timer = setTimeout(() => resolve("still open"), 3_000);
      req.on("close", () => {
        clearTimeout(timer);
        resolve(req.rstCode);
      });
    });
    expect(status).toBe(String(Code.InvalidArgument));
    expect(endStream).toBe(true);
    expect(closed).toBe(http2.constants.NGHTTP2_NO_ERROR);
  });

  it("a successful answer still sends headers, the message, then trailers with grpc-status 0", async () => {
    const s = await startScriptedOrders("s", () => ({ ok: true }));
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const res = await rawGetOrder(s.address, "application/grpc");
    expect(res.headersEndStream).toBe(false);
    expect(res.headers["grpc-status"]).toBeUndefined();
    expect(res.dataBytes).toBeGreaterThan(5);
    expect(res.trailers?.["grpc-status"]).toBe("0");
  });

  it("gRPC-Web errors are left as connect-node writes them (status in the body's trailer frame)", async () => {
    const s = await startScriptedOrders("s", () => ({ code: Code.Unavailable }));
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const res = await rawGetOrder(s.address, "application/grpc-web+proto");
    expect(res.headersEndStream).toBe(false);
    expect(res.dataBytes).toBeGreaterThan(0);
    // And a Connect gRPC-Web client still reads the error.
    const { createClient } = await import("@connectrpc/connect");
    const client = createClient(
      OrderService,
      createGrpcWebTransport({ baseUrl: `http://${s.address}`, httpVersion: "2" }),
    );
    await expect(client.getOrder({ id: "x" })).rejects.toMatchObject({
      code: Code.Unavailable,
    });
  });

  it("a grpc-js client's retry policy retries a mesh server's UNAVAILABLE to success", async () => {
    const s = await startScriptedOrders("s", (_method, n) =>
      n <= 2 ? { code: Code.Unavailable } : { ok: true },
    );
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const client = new grpc.Client(s.address, grpc.credentials.createInsecure(), {
      "grpc.service_config": JSON.stringify(retryConfig),
    });
    cleanups.push(() => client.close());
    const out = await grpcJsGetOrder(client);
    expect(out.error).toBeUndefined();
    expect(out.response?.order?.servedBy).toBe("s");
    expect(s.arrivals).toHaveLength(3);
    expect(s.arrivals.map((a) => a.previousAttempts)).toEqual([null, "1", "2"]);
  });

  it("a grpc-js client without a retry policy sees the code, message and trailers of a Trailers-Only error", async () => {
    const s = await startScriptedOrders("s", () => ({
      code: Code.ResourceExhausted,
      trailers: { "grpc-retry-pushback-ms": "25", "x-trailer": "t" },
    }));
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const client = new grpc.Client(s.address, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const out = await grpcJsGetOrder(client);
    expect(out.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // grpc-js leaves reserved characters' %-escapes in (its decodeURI quirk).
    expect(decodeURIComponent(out.error?.details ?? "")).toBe("scripted ResourceExhausted #1");
    expect(out.error?.metadata.get("x-trailer")).toEqual(["t"]);
    expect(s.arrivals).toHaveLength(1);
  });

  it("a grpc-js client honours a mesh server's grpc-retry-pushback-ms: waits that long, and does not retry on a negative one", async () => {
    const s = await startScriptedOrders("s", (_method, n) =>
      n === 1
        ? { code: Code.ResourceExhausted, trailers: { "grpc-retry-pushback-ms": "150" } }
        : { ok: true },
    );
    cleanups.push(() => s.server.close({ graceMs: 0 }));
    const config = {
      methodConfig: [
        {
          name: [{ service: "example.orders.v1.OrderService" }],
          retryPolicy: {
            maxAttempts: 3,
            initialBackoff: "0.001s",
            maxBackoff: "0.002s",
            backoffMultiplier: 2,
            retryableStatusCodes: ["RESOURCE_EXHAUSTED"],
          },
        },
      ],
    };
    const client = new grpc.Client(s.address, grpc.credentials.createInsecure(), {
      "grpc.service_config": JSON.stringify(config),
    });
    cleanups.push(() => client.close());
    const ok = await grpcJsGetOrder(client);
    expect(ok.error).toBeUndefined();
    expect(s.arrivals).toHaveLength(2);
    const gap = (s.arrivals[1]?.at ?? 0) - (s.arrivals[0]?.at ?? 0);
    expect(gap).toBeGreaterThanOrEqual(145);

    // A second server whose pushback says "do not retry".
    const s2 = await startScriptedOrders("s2", () => ({
      code: Code.ResourceExhausted,
      trailers: { "grpc-retry-pushback-ms": "-1" },
    }));
    cleanups.push(() => s2.server.close({ graceMs: 0 }));
    const client2 = new grpc.Client(s2.address, grpc.credentials.createInsecure(), {
      "grpc.service_config": JSON.stringify(config),
    });
    cleanups.push(() => client2.close());
    const refused = await grpcJsGetOrder(client2);
    expect(refused.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s2.arrivals).toHaveLength(1);
  });
});
