// connect-mesh on both ends: createMeshTransport / createMeshServer with
// default options (retries, breakers, outlier detection, idempotency keys and
// de-duplication, trace propagation all on), except compression off both ways
// and call logging off (its cost is measured by its own suite).

import { createClient } from "@connectrpc/connect";
import { createMeshServer, createMeshTransport } from "../../../src/index.js";
import type { StackOptions } from "../protocol.js";
import { createBenchEchoImpl, EchoService } from "./echo-impl.js";
import { type EchoClientHandle, type EchoServerHandle, roundRobin, type Stack } from "./types.js";

async function startServer(options: StackOptions): Promise<EchoServerHandle> {
  const server = createMeshServer({
    routes: (router) => router.service(EchoService, createBenchEchoImpl(options)),
    connect: { acceptCompression: [] },
    logger: false,
  });
  const bound = await server.listen({ host: "127.0.0.1", port: 0 });
  return { port: bound.port, close: () => server.close({ graceMs: 500 }) };
}

function createOne(target: string): EchoClientHandle {
  const transport = createMeshTransport({ target, acceptCompression: [], logger: false });
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
