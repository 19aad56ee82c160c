// @grpc/grpc-js on both ends, with a hand-built service definition whose
// (de)serialisers are protobuf-es toBinary/fromBinary (no proto-loader).

import {
  create,
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  type EchoBidiRequest,
  EchoBidiRequestSchema,
  type EchoBidiResponse,
  EchoBidiResponseSchema,
  type EchoNoSideEffectsRequest,
  EchoNoSideEffectsRequestSchema,
  type EchoNoSideEffectsResponse,
  EchoNoSideEffectsResponseSchema,
  type EchoRequest,
  EchoRequestSchema,
  type EchoResponse,
  EchoResponseSchema,
  type EchoServerStreamRequest,
  EchoServerStreamRequestSchema,
  type EchoServerStreamResponse,
  EchoServerStreamResponseSchema,
} from "../../../gen/test/v1/echo_pb.js";
import type { StackOptions } from "../protocol.js";
import { identitiesOption, tlsModeOption } from "./tls-options.js";
import {
  type BidiHandle,
  type EchoClientHandle,
  type EchoMethod,
  type EchoServerHandle,
  echoMethodOption,
  numberOption,
  roundRobin,
  type Stack,
} from "./types.js";

const ECHO_PATH = "/test.v1.EchoService/Echo";
const SERVER_STREAM_PATH = "/test.v1.EchoService/EchoServerStream";
const BIDI_PATH = "/test.v1.EchoService/EchoBidi";
const NO_SIDE_EFFECTS_PATH = "/test.v1.EchoNoSideEffectsService/EchoNoSideEffects";

interface Codec<T> {
  readonly serialize: (m: T) => Buffer;
  readonly deserialize: (b: Buffer) => T;
}

function codec<Desc extends DescMessage>(schema: Desc): Codec<MessageShape<Desc>> {
  return {
    serialize: (m) => Buffer.from(toBinary(schema, m)),
    deserialize: (b) => fromBinary(schema, b),
  };
}

const echoReq = codec(EchoRequestSchema);
const echoRes = codec(EchoResponseSchema);
const streamReq = codec(EchoServerStreamRequestSchema);
const streamRes = codec(EchoServerStreamResponseSchema);
const bidiReq = codec(EchoBidiRequestSchema);
const bidiRes = codec(EchoBidiResponseSchema);
const nseReq = codec(EchoNoSideEffectsRequestSchema);
const nseRes = codec(EchoNoSideEffectsResponseSchema);

function method<Req, Res>(
  path: string,
  originalName: string,
  req: Codec<Req>,
  res: Codec<Res>,
  requestStream: boolean,
  responseStream: boolean,
): grpc.MethodDefinition<Req, Res> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: req.serialize,
    requestDeserialize: req.deserialize,
    responseSerialize: res.serialize,
    responseDeserialize: res.deserialize,
    originalName,
  };
}

const echoServiceDefinition: grpc.ServiceDefinition = {
  echo: method(ECHO_PATH, "Echo", echoReq, echoRes, false, false),
  echoServerStream: method(
    SERVER_STREAM_PATH,
    "EchoServerStream",
    streamReq,
    streamRes,
    false,
    true,
  ),
  echoBidi: method(BIDI_PATH, "EchoBidi", bidiReq, bidiRes, true, true),
};

const noSideEffectsServiceDefinition: grpc.ServiceDefinition = {
  echoNoSideEffects: method(
    NO_SIDE_EFFECTS_PATH,
    "EchoNoSideEffects",
    nseReq,
    nseRes,
    false,
    false,
  ),
};

/** writeAll writes `repeat` copies, waiting for "drain" whenever grpc-js's buffer is full. */
async function writeAll(
  call: grpc.ServerWritableStream<EchoServerStreamRequest, EchoServerStreamResponse>,
): Promise<void> {
  const { payload, repeat } = call.request;
  for (let index = 0; index < repeat && !call.cancelled; index++) {
    if (!call.write(create(EchoServerStreamResponseSchema, { payload, index }))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          call.off("drain", done);
          call.off("cancelled", done);
          resolve();
        };
        call.on("drain", done);
        call.on("cancelled", done);
      });
    }
  }
  if (!call.cancelled) {
    call.end();
  }
}

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
  const echoServerStream: grpc.handleServerStreamingCall<
    EchoServerStreamRequest,
    EchoServerStreamResponse
  > = (call) => {
    void writeAll(call);
  };
  const echoBidi: grpc.handleBidiStreamingCall<EchoBidiRequest, EchoBidiResponse> = (call) => {
    let index = 0;
    call.on("data", (r: EchoBidiRequest) => {
      call.write(create(EchoBidiResponseSchema, { payload: r.payload, index: index++ }));
    });
    call.on("end", () => call.end());
    call.on("error", () => {});
  };
  const echoNoSideEffects: grpc.handleUnaryCall<
    EchoNoSideEffectsRequest,
    EchoNoSideEffectsResponse
  > = (call, callback) => {
    callback(null, create(EchoNoSideEffectsResponseSchema, { payload: call.request.payload }));
  };
  server.addService(echoServiceDefinition, { echo, echoServerStream, echoBidi });
  server.addService(noSideEffectsServiceDefinition, { echoNoSideEffects });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", serverCredentials(options), (err, p) =>
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

function openBidi(client: grpc.Client): BidiHandle {
  const call = client.makeBidiStreamRequest<EchoBidiRequest, EchoBidiResponse>(
    BIDI_PATH,
    bidiReq.serialize,
    bidiRes.deserialize,
  );
  let waiter: { resolve: (p: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  let failure: Error | undefined;
  const ended = new Promise<void>((resolve) => {
    call.on("status", () => resolve());
  });
  const fail = (e: Error) => {
    failure ??= e;
    const w = waiter;
    waiter = undefined;
    w?.reject(e);
  };
  call.on("data", (m: EchoBidiResponse) => {
    const w = waiter;
    waiter = undefined;
    w?.resolve(m.payload);
  });
  call.on("error", fail);
  call.on("end", () => fail(new Error("bidi stream ended before answering")));
  return {
    roundTrip(payload) {
      if (failure !== undefined) {
        return Promise.reject(failure);
      }
      return new Promise<Uint8Array>((resolve, reject) => {
        waiter = { resolve, reject };
        call.write(create(EchoBidiRequestSchema, { payload }));
      });
    },
    async close() {
      call.end();
      await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 1000))]);
    },
  };
}

/** serverCredentials: h2c, TLS, or mTLS requiring a client certificate (stack option `tls`). */
function serverCredentials(options: StackOptions): grpc.ServerCredentials {
  const mode = tlsModeOption(options);
  if (mode === "h2c") return grpc.ServerCredentials.createInsecure();
  const id = identitiesOption(options);
  return grpc.ServerCredentials.createSsl(
    mode === "mtls" ? Buffer.from(id.ca) : null,
    [{ private_key: Buffer.from(id.serverKey), cert_chain: Buffer.from(id.serverCert) }],
    mode === "mtls",
  );
}

/** clientCredentials: h2c, TLS verifying the server's host name, or mTLS with the client's certificate. */
function clientCredentials(options: StackOptions): {
  creds: grpc.ChannelCredentials;
  channel: Partial<grpc.ChannelOptions>;
} {
  const mode = tlsModeOption(options);
  if (mode === "h2c") return { creds: grpc.credentials.createInsecure(), channel: {} };
  const id = identitiesOption(options);
  const creds =
    mode === "mtls"
      ? grpc.credentials.createSsl(
          Buffer.from(id.ca),
          Buffer.from(id.clientKey),
          Buffer.from(id.clientCert),
        )
      : grpc.credentials.createSsl(Buffer.from(id.ca));
  // The certificate names localhost: node deprecates an IP as TLS server name.
  return { creds, channel: { "grpc.ssl_target_name_override": "localhost" } };
}

function createOne(target: string, which: EchoMethod, options: StackOptions): EchoClientHandle {
  const { creds, channel } = clientCredentials(options);
  const client = new grpc.Client(target, creds, channel);
  const echo =
    which === "echo"
      ? (payload: Uint8Array) =>
          new Promise<Uint8Array>((resolve, reject) => {
            client.makeUnaryRequest<EchoRequest, EchoResponse>(
              ECHO_PATH,
              echoReq.serialize,
              echoRes.deserialize,
              create(EchoRequestSchema, { payload }),
              (err, res) => (err || res === undefined ? reject(err) : resolve(res.payload)),
            );
          })
      : (payload: Uint8Array) =>
          new Promise<Uint8Array>((resolve, reject) => {
            client.makeUnaryRequest<EchoNoSideEffectsRequest, EchoNoSideEffectsResponse>(
              NO_SIDE_EFFECTS_PATH,
              nseReq.serialize,
              nseRes.deserialize,
              create(EchoNoSideEffectsRequestSchema, { payload }),
              (err, res) => (err || res === undefined ? reject(err) : resolve(res.payload)),
            );
          });
  return {
    echo,
    serverStream(payload, count, onMessage) {
      return new Promise<void>((resolve, reject) => {
        const call = client.makeServerStreamRequest<
          EchoServerStreamRequest,
          EchoServerStreamResponse
        >(
          SERVER_STREAM_PATH,
          streamReq.serialize,
          streamRes.deserialize,
          create(EchoServerStreamRequestSchema, { payload, repeat: count }),
        );
        let stopped = false;
        call.on("data", (m: EchoServerStreamResponse) => {
          if (!stopped && !onMessage(m.payload)) {
            stopped = true;
            call.cancel();
          }
        });
        call.on("error", (e: grpc.ServiceError) =>
          stopped && e.code === grpc.status.CANCELLED ? resolve() : reject(e),
        );
        call.on("end", () => resolve());
      });
    },
    openBidi: () => openBidi(client),
    async close() {
      client.close();
    },
  };
}

export const stack: Stack = {
  startServer,
  createClient: (targets, options) => {
    const which = echoMethodOption(options);
    return roundRobin(targets.map((t) => createOne(t, which, options)));
  },
};
