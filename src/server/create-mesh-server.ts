import { setMaxListeners } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createContextValues,
  type Interceptor,
  type MethodImplSpec,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { createCallCounters } from "../admin/call-counters.js";
import { createServerSnapshotter, type ServerSnapshotter } from "../admin/server-snapshotter.js";
import type { AuthorizationServerOption } from "../authz/authz-interceptor.js";
import { createEventEmitter } from "../call/event-emitter.js";
import { peerIdentityKey } from "../call/peer-identity.js";
import { peerKey } from "../call/server-call.js";
import { createMeshTap, type MeshTapObserver } from "../call/tapped-call.js";
import { createServerInterceptors, serverCallGate } from "../chain/server-interceptors.js";
import { type Clock, type ClockTimer, systemClock } from "../clock.js";
import { defaultLogger, SILENT_LOGGER } from "../default-logger.js";
import { formatAddress } from "../discovery/address.js";
import type { RegistryEvent } from "../discovery/registry.js";
import type { FaultInjector } from "../faults/fault-injection.js";
import { grantConnectionWindow } from "../grpc/connection-window.js";
import { createAbortedCallGuard } from "../grpc/server-aborted-guard.js";
import { boundedCompression, DEFAULT_SERVER_COMPRESSION } from "../grpc/server-compression.js";
import { createGrpcServerHandler } from "../grpc/server-handler.js";
import {
  connectionWindowSize,
  http2ServerOptions,
  type MeshServerHttp2Options,
  validateHttp2Options,
} from "../grpc/server-http2-settings.js";
import { captureRoutes } from "../grpc/server-routes.js";
import { clampFallbackTimeout } from "../grpc/server-timeout.js";
import type { IdempotencyEvent } from "../idempotency/events.js";
import { createMemoryIdempotencyStore } from "../idempotency/memory-store.js";
import type { IdempotencyInterceptorOptions } from "../idempotency/server-interceptor.js";
import { connectionCertificates } from "../identity/connection-certificates.js";
import { createPeerIdentityCache } from "../identity/peer-identity-of.js";
import {
  attachServerIdentity,
  type MeshServerIdentityOptions,
  serverIdentityTlsOptions,
  validateServerIdentity,
} from "../identity/server-identity.js";
import type { ConcurrencyLimitOptions } from "../limit/concurrency-limit.js";
import type { RateLimitOptions } from "../limit/rate-limit.js";
import { createEventLogger } from "../observability/event-logger.js";
import type { MeshMetrics } from "../observability/metrics.js";
import type { ServerObserveOptions } from "../observability/server-observe-interceptor.js";
import type { ServerSnapshot } from "../state/snapshot.js";
import { createHealthService, Health } from "./health-service.js";
import { createHealthStatus, type HealthStatus, ServingStatus } from "./health-status.js";
import {
  createReflectionServices,
  ServerReflectionV1,
  ServerReflectionV1alpha,
} from "./reflection-service.js";
import {
  createRegistrar,
  type MeshServerRegistration,
  REGISTRATION_DEFAULTS,
  validateRegistration,
} from "./registrar.js";
import { sendErrorsAsTrailersOnly } from "./trailers-only.js";

/** MeshServerTlsOptions turns on TLS (h2 over ALPN) instead of cleartext h2c. */
export interface MeshServerTlsOptions {
  readonly key: string | Buffer;
  readonly cert: string | Buffer;
  /** ca verifies client certificates when `requestCert` is set. */
  readonly ca?: string | Buffer;
  /** requestCert asks clients for a certificate (mutual TLS); default false. */
  readonly requestCert?: boolean;
}

export type { MeshServerRegistration } from "./registrar.js";

/** MeshServerOptions configures createMeshServer. */
export interface MeshServerOptions {
  /** routes registers services the Connect way: `(router) => router.service(Desc, impl)`. */
  readonly routes: (router: ConnectRouter) => void;
  /**
   * interceptors are the user's server interceptors. They run inside the mesh's
   * own (deadline and call scope first), right around the handler; see
   * `SERVER_INTERCEPTOR_ORDER`.
   */
  readonly interceptors?: readonly Interceptor[];
  /** maxTimeoutMs caps the deadline a client may ask for (INVALID_ARGUMENT above it); default none. */
  readonly maxTimeoutMs?: number;
  /**
   * readMaxBytes caps one request message, checked on the length prefix
   * before buffering and while inflating (RESOURCE_EXHAUSTED above it), on
   * every protocol; default 4 MiB (grpc-js's default); `connect.readMaxBytes`
   * is used when this is not set.
   */
  readonly readMaxBytes?: number;
  /**
   * maxMetadataBytes caps a gRPC request's metadata (names + values, as
   * grpc-js counts): a call over it alone fails RESOURCE_EXHAUSTED; default
   * 16 KiB (twice grpc-js's and grpc-java's 8 KiB: room for long trace and auth headers).
   */
  readonly maxMetadataBytes?: number;
  /** http2 sets the HTTP/2 limits (HTTP2_DEFAULTS: header list 128 KiB, 1_000 streams, 32 MiB). */
  readonly http2?: MeshServerHttp2Options;
  /** tls serves h2 over TLS; default cleartext h2c. */
  readonly tls?: MeshServerTlsOptions;
  /**
   * identity serves mutual TLS with a workload identity (instead of `tls`):
   * the source's certificate, rotated without a restart, and client
   * certificates verified against its trust bundle. Each call's verified
   * peer is the context value `peerIdentityKey` (also `currentPeerIdentity()`),
   * the log line's `peer.identity`, and the default idempotency principal.
   */
  readonly identity?: MeshServerIdentityOptions;
  /** health serves `grpc.health.v1.Health`; default true. */
  readonly health?: boolean;
  /**
   * reflection serves gRPC server reflection (`grpc.reflection.v1` and
   * `v1alpha`) from the services' descriptors, so grpcurl and `buf curl` need no
   * schema; default true.
   */
  readonly reflection?: boolean;
  /**
   * concurrencyLimit caps calls in flight per method, to a fixed
   * `maxInFlight` or an `adaptive` limit that follows measured latency
   * (`"gradient2"`, `"vegas"`), answering RESOURCE_EXHAUSTED with
   * `grpc-retry-pushback-ms` beyond it; `x-mesh-criticality: sheddable` calls
   * are refused first. Its events feed `metrics`; default none.
   */
  readonly concurrencyLimit?: ConcurrencyLimitOptions;
  /**
   * rateLimit answers calls over a token bucket limit (per method, or per
   * method and principal; in memory, or shared by replicas through
   * `createRedisRateLimitStore`) with RESOURCE_EXHAUSTED and
   * `grpc-retry-pushback-ms` = the time until a token; default none.
   */
  readonly rateLimit?: RateLimitOptions;
  /**
   * faults injects latency and errors right before the handler, changeable at
   * run time (`createFaultInjector()`), for tests, benchmarks and demos.
   */
  readonly faults?: FaultInjector;
  /**
   * idempotency de-duplicates keyed unary calls and replays stored outcomes
   * (IDEMPOTENCY_DEFAULTS; the in-memory store unless `store` is given: use
   * the Redis store when several replicas serve one service); false turns it off.
   */
  readonly idempotency?: IdempotencyInterceptorOptions | false;
  /**
   * authorization enforces an Istio-like policy on the caller's peer identity
   * (`ALLOW`/`DENY` rules by principal, trust domain, method and header; DENY
   * first, then ALLOW, then `defaultAction`, "deny" unless set), before rate
   * limits, user interceptors and idempotency. Give the rules, a compiled
   * policy, or a source replaced at run time (`createAuthorizationHolder`,
   * `createAuthorizationFileSource`); default none (every call allowed).
   */
  readonly authorization?: AuthorizationServerOption;
  /**
   * logger receives one JSON line per finished call with trace_id/span_id,
   * and is the parent of every handler's `currentLogger()`; default pino: JSON
   * lines to stdout at `MESH_LOG_LEVEL` when set, else warnings and errors to
   * stderr; false logs nothing (traces still flow).
   */
  readonly logger?: Logger | false;
  /** metrics records grpc_server_* and mesh_* metrics (`await createMetrics()`); default none. */
  readonly metrics?: MeshMetrics;
  /** logging tunes the call lines: redact paths, extra redacted headers, headers and payloads (off). */
  readonly logging?: Pick<
    ServerObserveOptions,
    "redact" | "redactHeaders" | "logHeaders" | "logPayloads"
  >;
  /** onEvent receives idempotency and registry events (they are also logged). */
  readonly onEvent?: (event: IdempotencyEvent | RegistryEvent) => void;
  /** registration announces the server in a registry once health is SERVING. */
  readonly registration?: MeshServerRegistration;
  /** clock drives the drain and registration timers; default the system clock. */
  readonly clock?: Clock;
  /** defaultGraceMs is close()'s drain time when none is given; default 10_000. */
  readonly defaultGraceMs?: number;
  /**
   * connect passes further options to Connect's router (readMaxBytes,
   * compression, protocols...). `interceptors`, `maxTimeoutMs`,
   * `shutdownSignal` and `requestGate` are the mesh's own and cannot be set here.
   */
  readonly connect?: Omit<
    ConnectRouterOptions,
    "interceptors" | "maxTimeoutMs" | "shutdownSignal" | "requestGate"
  >;
}

/** ListenOptions says where a mesh server listens. */
export interface ListenOptions {
  /** host to bind; default `127.0.0.1`. */
  readonly host?: string;
  /** port to bind; 0 (the default) picks a free port. */
  readonly port?: number;
}

/** BoundAddress is where a server listens once `listen` resolves. */
export interface BoundAddress {
  readonly host: string;
  readonly port: number;
  /** address is `host:port`, with IPv6 hosts in brackets: a mesh target. */
  readonly address: string;
  /** url is `http://host:port` (or https with TLS), for `buf curl` and Connect clients. */
  readonly url: string;
}

/** CloseOptions says how long close() lets in-flight calls finish. */
export interface CloseOptions {
  /** graceMs is how long in-flight calls may run before they are cancelled. */
  readonly graceMs?: number;
}

/** MeshServer is a running (or ready to run) mesh server. */
export interface MeshServer {
  /** listen binds and resolves with the bound address; health turns SERVING. */
  listen(options?: ListenOptions): Promise<BoundAddress>;
  /**
   * close drains and stops the server: it deregisters and health goes
   * NOT_SERVING, it keeps serving for `deregisterDelayMs` while clients learn
   * of it, then no new connections or streams are accepted (GOAWAY), in-flight
   * calls get up to `graceMs` to finish, and the rest are cancelled with
   * UNAVAILABLE. Idempotent: every call returns the same promise.
   */
  close(options?: CloseOptions): Promise<void>;
  /** health is the status table behind `grpc.health.v1.Health`. */
  readonly health: HealthStatus;
  /** inFlight is the number of calls being served now. */
  readonly inFlight: number;
  /** address is the bound address, once listening. */
  readonly address: BoundAddress | undefined;
  /**
   * tap attaches an observer of finished calls (redacted headers, trace id,
   * peer) and events, e.g. an admin server; returns the detach function.
   * While no observer is attached, calls build nothing for it.
   */
  tap(observer: MeshTapObserver<IdempotencyEvent | RegistryEvent>): () => void;
  /**
   * snapshot describes the server's state now: services and health, calls
   * in flight and counts per method, concurrency limit, idempotency store,
   * registration. Frozen and JSON-serialisable; it reads counters the call
   * path keeps anyway.
   */
  snapshot(): ServerSnapshot;
  [Symbol.asyncDispose](): Promise<void>;
}

const DEFAULTS: {
  readonly health: boolean;
  readonly defaultGraceMs: number;
  readonly maxMetadataBytes: number;
} = {
  health: true,
  defaultGraceMs: 10_000,
  maxMetadataBytes: 16 * 1024,
};

/** DEFAULT_READ_MAX_BYTES is grpc-js's default max receive message size (Connect's is 4 GiB). */
const DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024;

// Connect's default: compress a response message only from this size on.
const DEFAULT_COMPRESS_MIN_BYTES = 1024;

// After the grace period, cancelled calls still need a moment to write their
// error trailers before the sessions are destroyed.
const CANCEL_FLUSH_MS = 100;

/**
 * createMeshServer builds a server for Connect services on node:http2 that
 * speaks gRPC, gRPC-Web and the Connect protocol on one port, enforces
 * deadlines, propagates them to calls made by handlers, serves gRPC health and
 * drains gracefully on close.
 */
export function createMeshServer(options: MeshServerOptions): MeshServer {
  const opts = { ...DEFAULTS, ...options };
  validateServerOptions(opts);
  const logger = opts.logger === false ? SILENT_LOGGER : (opts.logger ?? defaultLogger());
  const eventLogger = createEventLogger(logger);
  const meshTap = createMeshTap<IdempotencyEvent | RegistryEvent>();
  // Built once the parts it reads exist; it counts the idempotency events.
  let snapshotter: ServerSnapshotter | undefined;
  const onEvent = createEventEmitter<IdempotencyEvent | RegistryEvent>(
    eventLogger.onEvent,
    opts.metrics?.onEvent.bind(opts.metrics),
    opts.onEvent,
    meshTap.events.emit,
    (e) => snapshotter?.onEvent(e),
  );
  const shutdown = new AbortController();
  // Connect links every call's signal to the shutdown signal: many listeners are expected.
  setMaxListeners(0, shutdown.signal);
  const healthStop = new AbortController();
  const health = createHealthStatus([]);

  const readMaxBytes = opts.readMaxBytes ?? opts.connect?.readMaxBytes ?? DEFAULT_READ_MAX_BYTES;
  const acceptCompression =
    opts.connect?.acceptCompression?.map(boundedCompression) ?? DEFAULT_SERVER_COMPRESSION;
  // The default memory store is made here, so that snapshots can read its occupancy.
  const idempotencyStore =
    opts.idempotency === false
      ? undefined
      : (opts.idempotency?.store ?? createMemoryIdempotencyStore());
  // Per-method call counts for snapshots, outermost: every call is counted.
  const calls = createCallCounters(opts.clock ?? systemClock);
  // One chain for both paths: the lean gRPC handler and connect-node.
  const interceptors = [
    calls.interceptor,
    ...createServerInterceptors(
      opts.idempotency === false
        ? opts
        : { ...opts, idempotency: { ...opts.idempotency, store: idempotencyStore } },
      logger,
      onEvent,
      meshTap.calls,
    ),
    createAbortedCallGuard(),
  ];
  const grpcMethods = new Map<string, MethodImplSpec>();
  const connectPaths = new Set<string>();
  const gate = serverCallGate();
  // With mTLS each call carries its connection's verified peer, read once per session.
  const peerIdentityOf = opts.identity === undefined ? undefined : createPeerIdentityCache();
  const handler = connectNodeAdapter({
    ...opts.connect,
    readMaxBytes,
    acceptCompression: [...acceptCompression],
    routes(connectRouter) {
      const router = captureRoutes(connectRouter, grpcMethods);
      opts.routes(router);
      for (const h of router.handlers) {
        health.set(h.service.typeName, ServingStatus.NOT_SERVING);
      }
      if (opts.health) {
        router.service(Health, createHealthService(health, healthStop.signal));
      }
      if (opts.reflection !== false) {
        const services = router.handlers.map((h) => h.service);
        const r = createReflectionServices([
          ...services,
          ServerReflectionV1,
          ServerReflectionV1alpha,
        ]);
        router.service(ServerReflectionV1, r.v1);
        router.service(ServerReflectionV1alpha, r.v1alpha);
      }
      for (const h of router.handlers) connectPaths.add(h.requestPath);
    },
    interceptors,
    ...(opts.maxTimeoutMs === undefined ? {} : { maxTimeoutMs: opts.maxTimeoutMs }),
    shutdownSignal: shutdown.signal,
    contextValues(req) {
      const values = createContextValues();
      const socket = req.socket;
      if (socket?.remoteAddress !== undefined) {
        values.set(peerKey, formatAddress(socket.remoteAddress, socket.remotePort ?? 0));
      }
      if (peerIdentityOf !== undefined) {
        values.set(
          peerIdentityKey,
          peerIdentityOf((req as http2.Http2ServerRequest).stream?.session),
        );
      }
      return values;
    },
    requestGate: gate,
  });
  const peers = new WeakMap<http2.Http2Session, string>();
  const grpcHandler = createGrpcServerHandler({
    methods: grpcMethods,
    interceptors,
    requestGate: gate,
    contextValues(stream) {
      const values = createContextValues();
      const session = stream.session;
      if (session !== undefined) {
        let peer = peers.get(session);
        if (peer === undefined) {
          const socket = session.socket;
          if (socket?.remoteAddress !== undefined) {
            peer = formatAddress(socket.remoteAddress, socket.remotePort ?? 0);
            peers.set(session, peer);
          }
        }
        if (peer !== undefined) values.set(peerKey, peer);
      }
      if (peerIdentityOf !== undefined) values.set(peerIdentityKey, peerIdentityOf(session));
      return values;
    },
    maxTimeoutMs: opts.maxTimeoutMs,
    readMaxBytes,
    maxMetadataBytes: opts.maxMetadataBytes,
    acceptCompression,
    // Off unless configured: inside the mesh compression costs more CPU than it saves.
    compressResponses: opts.connect?.acceptCompression !== undefined,
    compressMinBytes: opts.connect?.compressMinBytes ?? DEFAULT_COMPRESS_MIN_BYTES,
    binaryOptions: opts.connect?.binaryOptions,
    shutdownSignal: shutdown.signal,
    onStreamClose: () => onStreamClose(),
  });
  // gRPC (binary) requests for a method the lean handler serves, or for no
  // method at all, go to it; gRPC-Web, Connect, gRPC+JSON and routes it
  // cannot serve go to connect-node.
  const isLeanGrpc = (headers: http2.IncomingHttpHeaders): boolean => {
    const ct = headers["content-type"];
    if (
      headers[":method"] !== "POST" ||
      typeof ct !== "string" ||
      !(ct === "application/grpc" || ct === "application/grpc+proto" || isGrpcProtoWithParams(ct))
    ) {
      return false;
    }
    const path = headers[":path"] as string;
    return grpcMethods.has(path) || !connectPaths.has(path);
  };

  const h2Options = http2ServerOptions(opts.http2);
  const windowSize = connectionWindowSize(opts.http2);
  const h2 =
    opts.identity !== undefined
      ? http2.createSecureServer({
          ...h2Options,
          ...serverIdentityTlsOptions(opts.identity),
          allowHTTP1: false,
        })
      : opts.tls === undefined
        ? http2.createServer(h2Options)
        : http2.createSecureServer({
            ...h2Options,
            key: opts.tls.key,
            cert: opts.tls.cert,
            ...(opts.tls.ca === undefined ? {} : { ca: opts.tls.ca }),
            requestCert: opts.tls.requestCert ?? false,
            allowHTTP1: false,
          });
  const detachIdentity =
    opts.identity === undefined
      ? undefined
      : attachServerIdentity(h2 as http2.Http2SecureServer, opts.identity, {
          logger,
          clock: opts.clock ?? systemClock,
        });
  const sessions = new Set<http2.ServerHttp2Session>();
  let inFlight = 0;
  let drained: (() => void) | undefined;
  let closing = false;
  function onStreamClose(): void {
    inFlight--;
    if (inFlight === 0) {
      drained?.();
    }
  }
  h2.on("session", (session) => {
    // Before any request is read: the WINDOW_UPDATE goes out with the
    // server's SETTINGS, so the client never waits on the 64 KiB default.
    grantConnectionWindow(session, windowSize);
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    if (closing) {
      session.close();
    }
  });
  // No "request" listener: Node then builds no compat objects, and the lean
  // gRPC path pays for none. The fallback builds them itself.
  h2.on(
    "stream",
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      _flags: number,
      rawHeaders: string[],
    ) => {
      inFlight++;
      if (isLeanGrpc(headers)) {
        // The handler calls onStreamClose from its own 'close' listener.
        grpcHandler(stream, headers);
        return;
      }
      stream.once("close", onStreamClose);
      clampFallbackTimeout(headers, opts.maxTimeoutMs);
      const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
      const res = new http2.Http2ServerResponse(stream);
      sendErrorsAsTrailersOnly(req, res);
      handler(req, res);
    },
  );

  let bound: BoundAddress | undefined;
  let listening: Promise<BoundAddress> | undefined;
  let binding: Promise<BoundAddress> | undefined;
  let closed: Promise<void> | undefined;
  const clock = opts.clock ?? systemClock;
  const registrar = createRegistrar(opts.registration, {
    clock,
    onEvent,
    warn: (fields, message) => logger.warn(fields, message),
  });
  const wait = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  snapshotter = createServerSnapshotter({
    clock,
    calls,
    health,
    address: () => bound,
    state: () => (closing ? "closing" : bound === undefined ? "new" : "serving"),
    inFlight: () => inFlight,
    connections: () => sessions.size,
    sockets: () => {
      const out: { remote: string; local: string }[] = [];
      for (const session of sessions) {
        const socket = session.socket;
        if (socket?.remoteAddress === undefined || socket.localAddress === undefined) continue;
        const tls = opts.identity === undefined ? undefined : connectionCertificates(session);
        out.push({
          remote: formatAddress(socket.remoteAddress, socket.remotePort ?? 0),
          local: formatAddress(socket.localAddress, socket.localPort ?? 0),
          ...(tls === undefined ? {} : { tls }),
        });
      }
      return out;
    },
    concurrencyLimit: opts.concurrencyLimit,
    idempotencyStore,
    registration: () => registrar.snapshot(),
  });
  const snapshot = snapshotter.snapshot;

  async function doClose(graceMs: number): Promise<void> {
    closing = true;
    const wasRegistered = registrar.isRegistered();
    health.setAll(ServingStatus.NOT_SERVING);
    await registrar.deregister();
    if (wasRegistered && opts.registration !== undefined) {
      // Keep serving while clients' resolvers catch up with the removal.
      await wait(opts.registration?.deregisterDelayMs ?? REGISTRATION_DEFAULTS.deregisterDelayMs);
    }
    healthStop.abort();
    detachIdentity?.();
    // Wait for the bind, not for listen(): listen() itself closes the server
    // when registration fails, and waiting on it here would deadlock.
    if (binding !== undefined) {
      await binding.catch(() => undefined);
    }
    const serverClosed = new Promise<void>((resolve) => {
      if (!h2.listening) {
        resolve();
        return;
      }
      h2.close(() => resolve());
    });
    // GOAWAY: no new streams on existing connections; open streams continue.
    for (const s of sessions) {
      s.close();
    }
    if (inFlight > 0) {
      let timer: ClockTimer | undefined;
      await new Promise<void>((resolve) => {
        drained = resolve;
        timer = clock.setTimeout(resolve, graceMs);
      });
      clock.clearTimeout(timer);
    }
    if (inFlight > 0) {
      shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
      await wait(CANCEL_FLUSH_MS);
    }
    for (const s of sessions) {
      s.destroy();
    }
    await serverClosed;
  }

  const server: MeshServer = {
    listen(listenOptions = {}) {
      if (listening !== undefined) {
        return Promise.reject(new Error("mesh server: listen() was already called"));
      }
      if (closing) {
        return Promise.reject(new Error("mesh server: listen() after close()"));
      }
      const host = listenOptions.host ?? "127.0.0.1";
      const port = listenOptions.port ?? 0;
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        return Promise.reject(new RangeError(`port ${port} must be an integer in 0..65535`));
      }
      binding = new Promise<BoundAddress>((resolve, reject) => {
        h2.once("error", reject);
        h2.listen(port, host, () => {
          h2.off("error", reject);
          const info = h2.address() as AddressInfo;
          const address = formatAddress(info.address, info.port);
          bound = {
            host: info.address,
            port: info.port,
            address,
            url: `${opts.tls === undefined && opts.identity === undefined ? "http" : "https"}://${address}`,
          };
          health.setAll(ServingStatus.SERVING);
          resolve(bound);
        });
      });
      listening = binding.then(async (b) => {
        try {
          await registrar.start(health, b.address);
        } catch (e) {
          await server.close({ graceMs: 0 });
          throw e;
        }
        return b;
      });
      return listening;
    },
    close(closeOptions = {}) {
      const graceMs = closeOptions.graceMs ?? opts.defaultGraceMs;
      if (!(graceMs >= 0)) {
        return Promise.reject(new RangeError(`graceMs ${graceMs} must be >= 0`));
      }
      closed ??= doClose(graceMs);
      return closed;
    },
    health,
    get inFlight() {
      return inFlight;
    },
    get address() {
      return bound;
    },
    tap: meshTap.tap,
    snapshot,
    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}

function validateServerOptions(opts: MeshServerOptions & typeof DEFAULTS): void {
  if (typeof opts.routes !== "function") {
    throw new TypeError("createMeshServer: routes must be a function (router) => void");
  }
  if (opts.reflection !== undefined && typeof opts.reflection !== "boolean") {
    throw new TypeError(`reflection ${JSON.stringify(opts.reflection)} must be a boolean`);
  }
  if (opts.maxTimeoutMs !== undefined && !(opts.maxTimeoutMs > 0)) {
    throw new RangeError(`maxTimeoutMs ${opts.maxTimeoutMs} must be > 0`);
  }
  if (
    opts.readMaxBytes !== undefined &&
    !(
      Number.isInteger(opts.readMaxBytes) &&
      opts.readMaxBytes >= 1 &&
      opts.readMaxBytes <= 0xffffffff
    )
  ) {
    throw new RangeError(`readMaxBytes ${opts.readMaxBytes} must be an integer in 1..4294967295`);
  }
  if (!(Number.isInteger(opts.maxMetadataBytes) && opts.maxMetadataBytes >= 1)) {
    throw new RangeError(`maxMetadataBytes ${opts.maxMetadataBytes} must be an integer >= 1`);
  }
  validateHttp2Options(opts.http2);
  if (!(opts.defaultGraceMs >= 0)) {
    throw new RangeError(`defaultGraceMs ${opts.defaultGraceMs} must be >= 0`);
  }
  validateRegistration(opts.registration);
  if (opts.tls !== undefined && (opts.tls.key === undefined || opts.tls.cert === undefined)) {
    throw new TypeError("createMeshServer: tls needs both key and cert");
  }
  validateServerIdentity(opts.identity);
  if (opts.identity !== undefined && opts.tls !== undefined) {
    throw new TypeError("createMeshServer: set identity (mutual TLS) or tls, not both");
  }
}

function isGrpcProtoWithParams(ct: string): boolean {
  return ct.startsWith("application/grpc;") || ct.startsWith("application/grpc+proto;");
}
