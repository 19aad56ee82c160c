// @grpc/grpc-js on both ends, with a hand-built service definition whose
// (de)serialisers are protobuf-es toBinary/fromBinary (no proto-loader).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type EchoRequest,
  EchoRequestSchema,
  type EchoResponse,
  EchoResponseSchema,
} from "../../../gen/test/v1/echo_pb.js";
import type { StackOptions } from "../protocol.js";
import {
  type EchoClientHandle,
  type EchoServerHandle,
  numberOption,
  roundRobin,
  type Stack,
} from "./types.js";

const ECHO_PATH = "/test.v1.EchoService/Echo";

const serializeRequest = (m: EchoRequest): Buffer => Buffer.from(toBinary(EchoRequestSchema, m));
const deserializeRequest = (b: Buffer): EchoRequest => fromBinary(EchoRequestSchema, b);
const serializeResponse = (m: EchoResponse): Buffer => Buffer.from(toBinary(EchoResponseSchema, m));
const deserializeResponse = (b: Buffer): EchoResponse => fromBinary(EchoResponseSchema, b);

const echoServiceDefinition: grpc.ServiceDefinition = {
  echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: serializeRequest,
    requestDeserialize: deserializeRequest,
    responseSerialize: serializeResponse,
    responseDeserialize: deserializeResponse,
    originalName: "Echo",
  },
};

async function startServer(options: StackOptions): Promise<EchoServerHandle> {
  const delayMs = numberOption(options, "delayMs", 0);
  const server = new grpc.Server();
  const echo: grpc.handleUnaryCall<EchoRequest, EchoResponse> = (call, callback) => {
    const res = create(EchoResponseSchema, { payload: call.request.payload });
    if (delayMs > 0) {
      setTimeout(() => callback(null, res), delayMs);
    } else {
      callback(null, res);
    }
  };
  server.addService(echoServiceDefinition, { echo });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

function createOne(target: string): EchoClientHandle {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  return {
    echo(payload) {
      return new Promise<Uint8Array>((resolve, reject) => {
        client.makeUnaryRequest<EchoRequest, EchoResponse>(
          ECHO_PATH,
          serializeRequest,
          deserializeResponse,
          create(EchoRequestSchema, { payload }),
          (err, res) => (err || res === undefined ? reject(err) : resolve(res.payload)),
        );
      });
    },
    async close() {
      client.close();
    },
  };
}

export const stack: Stack = {
  startServer,
  createClient: (targets) => roundRobin(targets.map(createOne)),
};
