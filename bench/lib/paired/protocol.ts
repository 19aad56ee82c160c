// IPC shapes of the "paired" children used by the idempotency and logging
// suites: bench/lib/paired/server-child.ts hosts one or more connect-mesh
// servers (each a variant: idempotency store, logger, soak counters), and
// bench/lib/paired/client-child.ts holds one mesh transport per variant and
// drives a closed loop on one of them at a time, or an exactly-once soak over
// several. Configurations are measured in turn over processes that stay up,
// so their ratios come from one run with interleaved repetitions.
// Everything here must be JSON-serialisable.

/** PairedService is the unary method driven: OrderService/CreateOrder or EchoService/Echo. */
export type PairedService = "orders" | "echo";

/** IdempotencyMode is the server's idempotency layer: off, the memory store, or the Redis store. */
export type IdempotencyMode = "off" | "memory" | "redis";

/**
 * LogSink is where a process's mesh logger writes: nowhere (`logger: false`)
 * or a file at info, through connect-mesh's `createLogDestination` (writer
 * "mesh", the default) or `pino.destination({ sync: false })` ("sonic-boom").
 */
export type LogSink =
  | { readonly kind: "off" }
  | { readonly kind: "file"; readonly path: string; readonly writer?: LogWriter };

/** LogWriter is the pino destination a file LogSink uses. */
export type LogWriter = "mesh" | "sonic-boom";

export interface RedisSpec {
  readonly host: string;
  readonly port: number;
  /** keyPrefix is the Redis store's key prefix (one per run, deleted afterwards). */
  readonly keyPrefix: string;
}

/** PairedServerSpec is one mesh server in a server child. */
export interface PairedServerSpec {
  readonly name: string;
  readonly service: PairedService;
  readonly idempotency: IdempotencyMode;
  /** redis is required when idempotency is "redis". */
  readonly redis?: RedisSpec;
  /** ttlMs is how long completed outcomes are kept (IdempotencyInterceptorOptions.ttlMs). */
  readonly ttlMs?: number;
  readonly log: LogSink;
  /** handlerDelayMs makes the handler wait before answering (widens races in the soak); default 0. */
  readonly handlerDelayMs?: number;
  /** countKeys counts handler executions per CreateOrder `customer_id` (the soak's key). */
  readonly countKeys?: boolean;
}

export interface ServerChildInit {
  readonly servers: readonly PairedServerSpec[];
}

export interface ServerChildReady {
  readonly servers: ReadonlyArray<{ readonly name: string; readonly address: string }>;
}

/** ServerCounters are cumulative per-server counts since start. */
export interface ServerCounters {
  readonly name: string;
  /** executions counts handler runs. */
  readonly executions: number;
  /** events counts idempotency events by type (claimed, waiting, replayed, conflict, ...). */
  readonly events: Readonly<Record<string, number>>;
  /** logBytes counts the log bytes the server's logger wrote so far (0 without one). */
  readonly logBytes: number;
}

/** ServerWindow is a server child's CPU over a window plus its servers' counters at the end. */
export interface ServerWindow {
  readonly elapsedMs: number;
  readonly cpuUs: number;
  readonly maxRssBytes: number;
  readonly warnings: readonly string[];
  readonly counters: readonly ServerCounters[];
}

/** KeyCounts answers `key-counts`: per server, handler executions per soak key. */
export interface KeyCounts {
  readonly servers: ReadonlyArray<{
    readonly name: string;
    readonly perKey: Readonly<Record<string, number>>;
  }>;
}

/** LogSummary answers `log-summary` (after a flush): per log file, its size, lines and a sample line. */
export interface LogSummary {
  readonly files: ReadonlyArray<{
    readonly name: string;
    readonly path: string;
    readonly bytes: number;
    readonly lines: number;
    /** calls is how many calls this server handled or this client made over its life. */
    readonly calls: number;
    /** sample is one log line (the last complete one), for the report. */
    readonly sample: string;
  }>;
}

/** PairedClientSpec is one transport in a client child. */
export interface PairedClientSpec {
  readonly name: string;
  readonly service: PairedService;
  /** target is the server's `host:port`. */
  readonly target: string;
  /** idempotencyKeys: default auto mode (a UUID per call) when true, `idempotencyKeys: false` when false. */
  readonly idempotencyKeys: boolean;
  readonly log: LogSink;
  /** payloadBytes is the Echo payload size (echo only); default 128. */
  readonly payloadBytes?: number;
}

export interface ClientChildInit {
  readonly clients: readonly PairedClientSpec[];
}

/** StartLoad starts a closed loop of `inFlight` callers on one client. */
export interface StartLoad {
  readonly name: string;
  readonly inFlight: number;
  /** timeoutMs is every call's deadline; default 5_000. */
  readonly timeoutMs?: number;
}

/** ClientWindow is what the client child measured between mark-begin and mark-end. */
export interface ClientWindow {
  readonly elapsedMs: number;
  readonly cpuUs: number;
  readonly maxRssBytes: number;
  readonly warnings: readonly string[];
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
  /** replayed counts answers carrying `idempotency-replayed: true` (should be 0 with fresh keys). */
  readonly replayed: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly p999: number };
  /** logBytesBegin and logBytesEnd count the loaded client's log bytes written at the marks (0 without one). */
  readonly logBytesBegin: number;
  readonly logBytesEnd: number;
}

/** LoadStopped answers `progress` and `stop-load`: totals of the load since `start-load`. */
export interface LoadStopped {
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
}

/** SoakRequest sends every key `copies` times at once, copy i to client `(key + i) % clients`. */
export interface SoakRequest {
  readonly clients: readonly string[];
  /** run names the soak; keys are `soak-<run>-<i>` (the idempotency key and the customer_id). */
  readonly run: string;
  readonly keys: number;
  readonly copies: number;
  /** keysInFlight is how many keys are outstanding at once (each with `copies` calls). */
  readonly keysInFlight: number;
  readonly timeoutMs: number;
}

export interface SoakResult {
  readonly keys: number;
  readonly calls: number;
  readonly elapsedMs: number;
  readonly ok: number;
  /** replayed counts OK answers with `idempotency-replayed: true`. */
  readonly replayed: number;
  /** fresh counts OK answers without it (the copy whose handler ran). */
  readonly fresh: number;
  readonly errors: number;
  readonly errorsByCode: Readonly<Record<string, number>>;
  readonly firstError?: string;
  /** keysWithoutFresh counts keys none of whose copies was answered fresh. */
  readonly keysWithoutFresh: number;
  /** keysWithSeveralFresh counts keys more than one of whose copies was answered fresh. */
  readonly keysWithSeveralFresh: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** cpuUs is the client process's CPU over the soak. */
  readonly cpuUs: number;
}

/** soakKey is the idempotency key (and customer_id) of soak key `i`. */
export function soakKey(run: string, i: number): string {
  return `soak-${run}-${i}`;
}
