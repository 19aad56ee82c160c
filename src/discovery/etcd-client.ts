import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
} from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  type ContextValues,
  createClient,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { KV, Lease, Watch } from "../../gen/etcd/etcdserverpb/rpc_pb.js";
import { createEndpointTransport, type EndpointTransport } from "../grpc/endpoint-transport.js";
import { parseAddress } from "./address.js";

/*
 * Why our own etcd client: the npm `etcd3` package is dormant (last release
 * 2023) and has two known faults that break discovery — a lost lease goes
 * unnoticed, and a watcher is silently dropped after compaction. etcd's v3 API
 * is plain gRPC, so we speak it with Connect-ES and protoc-gen-es over the
 * mesh's own per-endpoint HTTP/2 transport (dogfooding it), from a trimmed
 * copy of etcd 3.4's protos in proto/etcd with etcd's field numbers.
 */

/** ETCD_ENDPOINTS_ENV names the environment variable read when no endpoints are given. */
export const ETCD_ENDPOINTS_ENV = "MESH_ETCD_ENDPOINTS";

/** DEFAULT_ETCD_ENDPOINT is etcd's conventional local client address. */
export const DEFAULT_ETCD_ENDPOINT = "127.0.0.1:2379";

/** EtcdClientOptions configures createEtcdClient. */
export interface EtcdClientOptions {
  /**
   * endpoints are etcd client addresses, `host:port` or `http://host:port`,
   * tried in order. Default: `MESH_ETCD_ENDPOINTS` (comma-separated), else
   * `127.0.0.1:2379`.
   */
  readonly endpoints?: readonly string[];
  /** callTimeoutMs bounds each unary call that sets no timeout; default 5_000. */
  readonly callTimeoutMs?: number;
  /** connectTimeoutMs bounds connecting to one endpoint; default 3_000. */
  readonly connectTimeoutMs?: number;
  /**
   * pingIntervalMs sends an HTTP/2 PING on a connection idle this long, so a
   * silently dead etcd (host gone, no RST) is noticed; default 10_000.
   */
  readonly pingIntervalMs?: number;
}

const CLIENT_DEFAULTS = {
  // A healthy etcd answers in milliseconds; 5 s leaves room for a leader
  // election (~1 s by default) without hanging a registration forever.
  callTimeoutMs: 5_000,
  // Connect's 20 s default would stall failover to the next endpoint.
  connectTimeoutMs: 3_000,
  // Connect's default never pings: a half-open connection would hang every
  // call on it until its deadline. PINGs are a few bytes per interval.
  pingIntervalMs: 10_000,
  pingTimeoutMs: 5_000,
} as const;

/**
 * EtcdClient holds Connect clients for etcd's KV, Watch and Lease services
 * over one connection to the current endpoint. A call that cannot reach its
 * endpoint moves the client on to the next one: unary calls are retried there
 * at once, streams fail and go to the next endpoint when the caller reopens
 * them.
 */
export interface EtcdClient {
  /** endpoints are the normalized `host:port` addresses, in failover order. */
  readonly endpoints: readonly string[];
  readonly kv: Client<typeof KV>;
  readonly watch: Client<typeof Watch>;
  readonly lease: Client<typeof Lease>;
  /** current is the endpoint the next call goes to. */
  current(): string;
  /** close aborts open calls and closes every connection. Idempotent. */
  close(): void;
}

/**
 * parseEtcdEndpoints reads a comma-separated endpoint list such as
 * `http://127.0.0.1:2379,127.0.0.1:22379` into `host:port` addresses. It
 * throws a TypeError quoting the bad entry for https (not supported yet),
 * other schemes, paths, and addresses that are not host:port.
 */
export function parseEtcdEndpoints(value: string): string[] {
  const out: string[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    if (entry === "") {
      continue;
    }
    out.push(normalizeEndpoint(entry));
  }
  if (out.length === 0) {
    throw new TypeError(`etcd endpoints ${JSON.stringify(value)} name no endpoint`);
  }
  return out;
}

function normalizeEndpoint(entry: string): string {
  let address = entry;
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(entry);
  if (scheme !== null) {
    if (scheme[1]?.toLowerCase() !== "http") {
      throw new TypeError(
        `etcd endpoint ${JSON.stringify(entry)}: scheme ${JSON.stringify(scheme[1])} is not supported (want http:// or host:port)`,
      );
    }
    address = entry.slice(scheme[0].length).replace(/\/$/, "");
  }
  try {
    parseAddress(address);
  } catch (e) {
    throw new TypeError(`etcd endpoint ${JSON.stringify(entry)} is not host:port`, { cause: e });
  }
  return address;
}

/** resolveEtcdEndpoints applies the documented default order: option, env, localhost. */
export function resolveEtcdEndpoints(endpoints: readonly string[] | undefined): string[] {
  if (endpoints !== undefined) {
    return parseEtcdEndpoints(endpoints.join(","));
  }
  const env = process.env[ETCD_ENDPOINTS_ENV];
  if (env !== undefined && env.trim() !== "") {
    return parseEtcdEndpoints(env);
  }
  return [DEFAULT_ETCD_ENDPOINT];
}

/**
 * prefixRangeEnd is the `range_end` that selects every key starting with
 * `prefix`: the prefix with its last byte below 0xff incremented (etcd's
 * GetPrefixRangeEnd). An all-0xff prefix yields `\0`, meaning "to the end".
 */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array {
  const end = prefix.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    const b = end[i] as number;
    if (b < 0xff) {
      end[i] = b + 1;
      return end.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}

// Codes that say "this endpoint is not answering", as opposed to an answer.
// connect-node maps ECONNRESET to Aborted (see FACTS.md).
const FAILOVER_CODES = new Set([Code.Unavailable, Code.Aborted]);

/** createEtcdClient connects lazily: nothing is dialed before the first call. */
export function createEtcdClient(options: EtcdClientOptions = {}): EtcdClient {
  const endpoints = resolveEtcdEndpoints(options.endpoints);
  const callTimeoutMs = options.callTimeoutMs ?? CLIENT_DEFAULTS.callTimeoutMs;
  const connectTimeoutMs = options.connectTimeoutMs ?? CLIENT_DEFAULTS.connectTimeoutMs;
  const pingIntervalMs = options.pingIntervalMs ?? CLIENT_DEFAULTS.pingIntervalMs;
  if (!(pingIntervalMs > 0)) {
    throw new RangeError(`pingIntervalMs ${pingIntervalMs} must be > 0`);
  }
  if (!(callTimeoutMs > 0)) {
    throw new RangeError(`callTimeoutMs ${callTimeoutMs} must be > 0`);
  }
  if (!(connectTimeoutMs > 0)) {
    throw new RangeError(`connectTimeoutMs ${connectTimeoutMs} must be > 0`);
  }
  const closing = new AbortController();
  // One lazily created transport per endpoint, each with its own HTTP/2
  // session: a Connect transport is bound to one origin.
  const transports = new Map<string, EndpointTransport>();
  let index = 0;

  function endpointAt(i: number): EndpointTransport {
    const address = endpoints[i % endpoints.length] as string;
    let t = transports.get(address);
    if (t === undefined) {
      t = createEndpointTransport(address, {
        connectTimeoutMs,
        pingIntervalMs,
        pingTimeoutMs: CLIENT_DEFAULTS.pingTimeoutMs,
      });
      transports.set(address, t);
    }
    return t;
  }

  // failedOver moves on from endpoint `at` when `error` says it is not
  // answering. Our own default deadline firing counts too (a blackholed
  // endpoint), a deadline the caller chose does not.
  function failedOver(at: number, error: unknown, ownDeadline = false): boolean {
    const code = ConnectError.from(error).code;
    const down = FAILOVER_CODES.has(code) || (ownDeadline && code === Code.DeadlineExceeded);
    if (down && index === at) {
      index = (at + 1) % endpoints.length;
    }
    return down;
  }

  function checkOpen(): void {
    if (closing.signal.aborted) {
      throw new ConnectError("etcd client is closed", Code.Canceled);
    }
  }

  function linked(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined ? closing.signal : AbortSignal.any([signal, closing.signal]);
  }

  const transport: Transport = {
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      checkOpen();
      let lastError: unknown;
      // Each endpoint gets one try per call, starting at the current one.
      for (let n = 0; n < endpoints.length; n++) {
        const at = index;
        try {
          return await endpointAt(at).transport.unary(
            method,
            linked(signal),
            timeoutMs ?? callTimeoutMs,
            header,
            input,
            contextValues,
          );
        } catch (e) {
          lastError = e;
          failedOver(at, e, timeoutMs === undefined);
          // Retry elsewhere only on a fast failure: a deadline is spent.
          if (!FAILOVER_CODES.has(ConnectError.from(e).code) || closing.signal.aborted) {
            throw e;
          }
        }
      }
      throw lastError;
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      checkOpen();
      // Streams are not retried here: the request iterable may be partly
      // consumed. The caller reopens them; the next try goes elsewhere.
      const at = index;
      let res: StreamResponse<I, O>;
      try {
        res = await endpointAt(at).transport.stream(
          method,
          linked(signal),
          timeoutMs,
          header,
          input,
          contextValues,
        );
      } catch (e) {
        failedOver(at, e);
        throw e;
      }
      const messages = res.message;
      return {
        ...res,
        message: {
          async *[Symbol.asyncIterator]() {
            try {
              yield* messages;
            } catch (e) {
              failedOver(at, e);
              throw e;
            }
          },
        },
      };
    },
  };

  return {
    endpoints,
    kv: createClient(KV, transport),
    watch: createClient(Watch, transport),
    lease: createClient(Lease, transport),
    current: () => endpoints[index] as string,
    close() {
      if (closing.signal.aborted) {
        return;
      }
      closing.abort(new ConnectError("etcd client was closed", Code.Canceled));
      for (const t of transports.values()) {
        t.close();
      }
      transports.clear();
    },
  };
}

/**
 * RequestQueue is the request side of a bidi stream that code pushes into
 * from timers and callbacks: push never blocks, end finishes the stream.
 */
export interface RequestQueue<T> extends AsyncIterable<T> {
  push(item: T): void;
  end(): void;
}

/** createRequestQueue builds an unbounded push-to-pull queue for one consumer. */
export function createRequestQueue<T>(): RequestQueue<T> {
  const items: T[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    push(item) {
      if (!ended) {
        items.push(item);
        wake?.();
      }
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          const item = items.shift();
          if (item !== undefined) {
            yield item;
            continue;
          }
          if (ended) {
            return;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      } finally {
        ended = true;
        items.length = 0;
      }
    },
  };
}
