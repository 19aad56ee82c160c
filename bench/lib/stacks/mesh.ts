// connect-mesh on both ends: createMeshTransport / createMeshServer with
// default options, except compression off both ways.

import { createClient } from "@connectrpc/connect";
import { createMeshServer, createMeshTransport } from "../../../src/index.js";
import type { StackOptions } from "../protocol.js";
import { createBenchEchoImpl, EchoService } from "./echo-impl.js";
import { type EchoClientHandle, type EchoServerHandle, roundRobin, type Stack } from "./types.js";

async function startServer(options: StackOptions): Promise<EchoServerHandle> {
  const server = createMeshServer({
    routes: (router) => router.service(EchoService, createBenchEchoImpl(options)),
    connect: { acceptCompression: [] },
  });
  const bound = await server.listen({ host: "127.0.0.1", port: 0 });
  return { port: bound.port, close: () => server.close({ graceMs: 500 }) };
}

function createOne(target: string): EchoClientHandle {
  const transport = createMeshTransport({ target, acceptCompression: [] });
  const client = createClient(EchoService, transport);
  return {
    async echo(payload) {
      const res = await client.echo({ payload });
      return res.payload;
    },
    close: () => transport.close(),
  };
}

export const stack: Stack = {
  startServer,
  // One transport per target until the mesh has multi-endpoint targets.
  createClient: (targets) => roundRobin(targets.map(createOne)),
};
