// Stock Connect-ES: createGrpcTransport client, connectNodeAdapter on
// http2.createServer (h2c). Compression is off both ways.

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createClient } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import type { StackOptions } from "../protocol.js";
import {
  benchNoSideEffectsImpl,
  createBenchEchoImpl,
  createConnectEchoClient,
  EchoNoSideEffectsService,
  EchoService,
} from "./echo-impl.js";
import {
  type EchoClientHandle,
  type EchoMethod,
  type EchoServerHandle,
  echoMethodOption,
  roundRobin,
  type Stack,
} from "./types.js";

async function startServer(options: StackOptions): Promise<EchoServerHandle> {
  const handler = connectNodeAdapter({
    routes: (router) =>
      router
        .service(EchoService, createBenchEchoImpl(options))
        .service(EchoNoSideEffectsService, benchNoSideEffectsImpl),
    acceptCompression: [],
  });
  const server = http2.createServer(handler);
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) {
          s.destroy();
        }
      }),
  };
}

function createOne(target: string, method: EchoMethod): EchoClientHandle {
  const transport = createGrpcTransport({ baseUrl: `http://${target}`, acceptCompression: [] });
  return createConnectEchoClient(
    createClient(EchoService, transport),
    createClient(EchoNoSideEffectsService, transport),
    method,
    // The stock transport has no close(); the process exits right after.
    async () => {},
  );
}

export const stack: Stack = {
  startServer,
  createClient: (targets, options) => {
    const method = echoMethodOption(options);
    return roundRobin(targets.map((t) => createOne(t, method)));
  },
};
