// Specs shared by scenarios, the runner and the child processes, and the IPC
// message shapes between the runner (parent) and bench/server.ts and
// bench/client.ts (children). Everything here must be JSON-serialisable.

/** StackName names an implementation of the echo service (server) or client. */
export type StackName = "grpc-js" | "connect" | "mesh" | "lean";

export const STACKS: readonly StackName[] = ["grpc-js", "connect", "mesh", "lean"];

/**
 * StackOptions are per-scenario knobs passed through to a stack. Known keys:
 * - server `delayMs`: the echo handler waits this long before answering.
 * - client `method`: `"echo"` (default, EchoService/Echo, idempotency unknown:
 *   the mesh keys it and de-duplicates it) or `"no-side-effects"`
 *   (EchoNoSideEffectsService/EchoNoSideEffects, declared NO_SIDE_EFFECTS).
 * - mesh client and server `log`: `"file"` (default: pino at info to a temp
 *   file per process) or `"off"` (`logger: false`).
 * Unknown keys are ignored, so later suites can add their own.
 */
export type StackOptions = Readonly<Record<string, string | number | boolean>>;

export interface ServerSpec {
  readonly stack: StackName;
  readonly options?: StackOptions;
}

export interface ClientSpec {
  readonly stack: StackName;
  readonly options?: StackOptions;
}

/** BenchConfig is one measured configuration of a scenario. */
export interface BenchConfig {
  /** label is the configuration name in the report, e.g. "mesh → grpc-js". */
  readonly label: string;
  readonly client: ClientSpec;
  /** servers are forked one process each; the client gets all their addresses as targets. */
  readonly servers: readonly ServerSpec[];
  readonly payloadBytes: number;
  /** inFlight is how many callers run at once (concurrent calls or streams). */
  readonly inFlight: number;
  /** workload is what each of the `inFlight` callers does; default unary. */
  readonly workload?: Workload;
  /** streamMessages is how many messages one server-streaming call asks for (server-stream only). */
  readonly streamMessages?: number;
  /**
   * ratePerSec paces unary callers to this many calls per second in total
   * (each caller starts a call every inFlight / ratePerSec seconds, later when
   * its previous call is still running); default: no pacing (closed loop).
   */
  readonly ratePerSec?: number;
}

/**
 * Workload is what one caller of the closed loop does, and so what one
 * counted unit is: a unary call, one message of a server stream (each caller
 * runs one stream after another), or one round trip on a long-lived bidi
 * stream (send one message, await its answer).
 */
export type Workload = "unary" | "server-stream" | "bidi";

/** ServerInit is sent to a server child; it answers with ServerReady. */
export interface ServerInit {
  readonly spec: ServerSpec;
}

export interface ServerReady {
  readonly port: number;
}

/** ClientLoad makes a client child import its stack early (in parallel with server start-up). */
export interface ClientLoad {
  readonly stack: StackName;
}

/** ClientInit is sent to a client child; it answers once connected (one probe call done). */
export interface ClientInit {
  readonly spec: ClientSpec;
  /** targets are `127.0.0.1:port` addresses, one per server. */
  readonly targets: readonly string[];
  readonly payloadBytes: number;
  readonly inFlight: number;
  readonly workload?: Workload;
  readonly streamMessages?: number;
  readonly ratePerSec?: number;
}

/** ProcessWindow is what a child measured between mark-begin and mark-end. */
export interface ProcessWindow {
  readonly elapsedMs: number;
  /** cpuUs is user + system CPU time of the whole process over the window. */
  readonly cpuUs: number;
  readonly cpuUserUs: number;
  readonly cpuSystemUs: number;
  /** maxRssBytes is the process's peak resident set size so far. */
  readonly maxRssBytes: number;
  /** warnings are the distinct process warnings (name: message) emitted so far. */
  readonly warnings: readonly string[];
}

/** ClientWindow adds the load generator's counts and latencies. */
export interface ClientWindow extends ProcessWindow {
  /** calls completed successfully inside the window. */
  readonly calls: number;
  readonly errors: number;
  /** firstError is the message of the first failed call in the window, if any. */
  readonly firstError?: string;
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly p999: number;
    readonly max: number;
    readonly mean: number;
  };
}

/** ClientStopped is the answer to "stop": totals over the whole life of the load. */
export interface ClientStopped {
  readonly totalCalls: number;
  readonly totalErrors: number;
  readonly firstError?: string;
}

/** Request is a command from the parent; Reply answers it with the same id. */
export interface Request {
  readonly id: number;
  readonly cmd: string;
  readonly args?: unknown;
}

export type Reply =
  | { readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** ServerCommand lists the commands bench/server.ts understands. */
export type ServerCommand = "init" | "mark-begin" | "mark-end" | "close";
/** ClientCommand lists the commands bench/client.ts understands. */
export type ClientCommand = "load" | "init" | "start" | "mark-begin" | "mark-end" | "stop";

/** STACK_DESCRIPTIONS say how each stack is set up, for the report's notes. */
export const STACK_DESCRIPTIONS: Readonly<Record<StackName, string>> = {
  "grpc-js":
    "@grpc/grpc-js 1.14: Client.makeUnaryRequest / Server.addService with a hand-built service definition and protobuf-es toBinary/fromBinary serialisers (no proto-loader); no compression configured",
  connect:
    "stock Connect-ES 2.3: createGrpcTransport({ acceptCompression: [] }) client, connectNodeAdapter({ acceptCompression: [] }) on http2.createServer (h2c)",
  mesh: "connect-mesh with every default on: createMeshTransport({ target, acceptCompression: [], logger }) client (p2c-ewma balancer, outlier detection, retries, circuit breakers, idempotency keys, trace propagation), createMeshServer({ connect: { acceptCompression: [] }, logger }) server (idempotency de-duplication with the in-memory store, health service, trace context); `logger` is pino at info writing to a temp file per process through connect-mesh's `createLogDestination({ dest })`, one line per finished call; no deadlines set",
  lean: 'connect-mesh with every mesh feature off: createMeshTransport({ target, acceptCompression: [], policy: "pick-first", retry: false, circuitBreaker: false, idempotencyKeys: false, outlierDetection: false, logger: false }) client, createMeshServer({ connect: { acceptCompression: [] }, idempotency: false, logger: false }) server (health service on)',
};
