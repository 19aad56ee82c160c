// connect-mesh on both ends, two ways:
// - `stack` ("mesh"): createMeshTransport / createMeshServer with every
//   default on (p2c-ewma, outlier detection, retries, breakers, idempotency
//   keys and de-duplication with the memory store, trace propagation) and
//   call logging at info to a temp file per process (option `log: "off"`
//   turns it off); only compression is off both ways.
// - `leanStack` ("lean"): the same transport and server with every mesh
//   feature off, to measure the data path itself.

import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import type { MeshServerOptions, MeshTransportOptions } from "../../../src/index.js";
import { loadMeshLibrary } from "../mesh-library.js";
import { type FileLog, openFileLog } from "../paired/file-log.js";
import type { StackOptions } from "../protocol.js";
import {
  benchNoSideEffectsImpl,
  createBenchEchoImpl,
  createConnectEchoClient,
  EchoNoSideEffectsService,
  EchoService,
} from "./echo-impl.js";
import { identitiesOption, tlsModeOption } from "./tls-options.js";
import {
  type EchoClientHandle,
  type EchoMethod,
  type EchoServerHandle,
  echoMethodOption,
  roundRobin,
  type Stack,
} from "./types.js";

type Flavour = "mesh" | "lean";

// The compiled library (dist/), as users run it; see ../mesh-library.ts.
const { createIdentitySource, createMeshServer, createMeshTransport } = await loadMeshLibrary();

/** LEAN_CLIENT turns off every mesh feature a transport has a switch for. */
const LEAN_CLIENT = {
  policy: "pick-first",
  retry: false,
  circuitBreaker: false,
  idempotencyKeys: false,
  outlierDetection: false,
  logger: false,
} as const satisfies Partial<MeshTransportOptions>;

/** LEAN_SERVER turns off de-duplication and logging; health stays on (it costs nothing per call). */
const LEAN_SERVER = {
  idempotency: false,
  logger: false,
} as const satisfies Partial<MeshServerOptions>;

/**
 * openCallLog opens the pino-to-file logger of one process, unless the stack
 * option `log` is "off". The file goes away when the process closes its side.
 */
function openCallLog(options: StackOptions, side: "client" | "server"): FileLog | undefined {
  const log = options.log ?? "file";
  if (log === "off") {
    return undefined;
  }
  if (log !== "file") {
    throw new TypeError(`stack option log must be "file" or "off", got ${String(log)}`);
  }
  const path = join(tmpdir(), `connect-mesh-bench-${process.pid}-${side}.log`);
  return openFileLog({ kind: "file", path });
}

async function closeCallLog(log: FileLog | undefined): Promise<void> {
  if (log !== undefined) {
    await log.flush();
    rmSync(log.path, { force: true });
  }
}

/** serverTls: h2c, TLS (`tls`), or mTLS with a SPIFFE identity (`identity`), by stack option `tls`. */
function serverTls(options: StackOptions): Partial<MeshServerOptions> {
  const mode = tlsModeOption(options);
  if (mode === "h2c") return {};
  const id = identitiesOption(options);
  if (mode === "tls") return { tls: { key: id.serverKey, cert: id.serverCert } };
  const source = createIdentitySource({
    key: id.serverKey,
    cert: id.serverCert,
    ca: id.ca,
    logger: false,
  });
  return { identity: { source } };
}

/** clientTls: h2c, TLS checking the host name, or mTLS pinning the server's SPIFFE ID. */
function clientTls(options: StackOptions): Partial<MeshTransportOptions> {
  const mode = tlsModeOption(options);
  if (mode === "h2c") return {};
  const id = identitiesOption(options);
  if (mode === "tls") return { tls: { ca: id.ca } };
  const source = createIdentitySource({
    key: id.clientKey,
    cert: id.clientCert,
    ca: id.ca,
    logger: false,
  });
  return { identity: source, serverIdentities: [id.serverId] };
}

async function startServer(flavour: Flavour, options: StackOptions): Promise<EchoServerHandle> {
  const log = flavour === "mesh" ? openCallLog(options, "server") : undefined;
  const server = createMeshServer({
    routes: (router) =>
      router
        .service(EchoService, createBenchEchoImpl(options))
        .service(EchoNoSideEffectsService, benchNoSideEffectsImpl),
    connect: { acceptCompression: [] },
    ...serverTls(options),
    ...(flavour === "lean" ? LEAN_SERVER : { logger: log?.logger ?? false }),
  });
  const bound = await server.listen({ host: "127.0.0.1", port: 0 });
  return {
    port: bound.port,
    async close() {
      await server.close({ graceMs: 500 });
      await closeCallLog(log);
    },
  };
}

function createOne(
  flavour: Flavour,
  target: string,
  method: EchoMethod,
  log: FileLog | undefined,
  options: StackOptions,
): EchoClientHandle {
  const transport = createMeshTransport({
    target,
    acceptCompression: [],
    ...clientTls(options),
    ...(flavour === "lean" ? LEAN_CLIENT : { logger: log?.logger ?? false }),
  });
  return createConnectEchoClient(
    createClient(EchoService, transport),
    createClient(EchoNoSideEffectsService, transport),
    method,
    () => transport.close(),
  );
}

function createMeshClient(
  flavour: Flavour,
  targets: readonly string[],
  options: StackOptions,
): EchoClientHandle {
  const method = echoMethodOption(options);
  const log = flavour === "mesh" ? openCallLog(options, "client") : undefined;
  // One transport per target until the mesh has multi-endpoint targets.
  const inner = roundRobin(targets.map((t) => createOne(flavour, t, method, log, options)));
  return {
    ...inner,
    async close() {
      await inner.close();
      await closeCallLog(log);
    },
  };
}

export const stack: Stack = {
  startServer: (options) => startServer("mesh", options),
  createClient: (targets, options) => createMeshClient("mesh", targets, options),
};

export const leanStack: Stack = {
  startServer: (options) => startServer("lean", options),
  createClient: (targets, options) => createMeshClient("lean", targets, options),
};
