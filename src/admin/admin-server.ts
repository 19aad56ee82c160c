import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server } from "node:http2";
import type { AddressInfo, Server, Socket } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { MeshTapObserver } from "../call/tapped-call.js";
import { formatAddress } from "../discovery/address.js";
import { type MeshMetrics, metricsHandler } from "../observability/metrics.js";
import type { ServerSnapshot, TransportSnapshot } from "../state/snapshot.js";
import { type AdminStats, type AdminStatsOptions, createAdminStats } from "./admin-stats.js";
import { Channelz, createChannelzService } from "./channelz-service.js";
import { DASHBOARD_HTML } from "./dashboard-page.js";
import { createSniffingServer } from "./sniff-protocol.js";

/**
 * AdminTransport is what the admin server needs of a transport: a
 * `MeshTransport` is one. `snapshot()`, when present, feeds `/api/transports`.
 */
export interface AdminTransport {
  readonly target: string;
  tap(observer: MeshTapObserver<never>): () => void;
  snapshot?(): TransportSnapshot;
}

/**
 * AdminServer is what the admin server needs of a mesh server: a
 * `MeshServer` is one. `snapshot()`, when present, feeds `/api/servers`.
 */
export interface AdminServer {
  readonly address: { readonly address: string } | undefined;
  readonly inFlight: number;
  tap(observer: MeshTapObserver<never>): () => void;
  snapshot?(): ServerSnapshot;
}

/** ServeAdminOptions configures serveAdmin. */
export interface ServeAdminOptions extends AdminStatsOptions {
  /** port to bind; default 0 (a free port: read `url`). */
  readonly port?: number;
  /**
   * host to bind; default `127.0.0.1`. The admin server shows call metadata
   * and mesh state: bind beyond loopback only behind your own access control.
   */
  readonly host?: string;
  /** transports to show (mesh transports); default none. */
  readonly transports?: readonly AdminTransport[];
  /** servers to show (mesh servers); default none. */
  readonly servers?: readonly AdminServer[];
  /** metrics are served on `/metrics` (Prometheus text); default none (404). */
  readonly metrics?: MeshMetrics;
  /**
   * channelz also serves `grpc.channelz.v1.Channelz` (gRPC over h2c) on the
   * same port, from the same transports and servers, for grpc tooling;
   * default false.
   */
  readonly channelz?: boolean;
  /** intervalMs is how often `/api/events` pushes the state; default 1_000. */
  readonly intervalMs?: number;
  /** now is the wall clock (epoch ms) the charts are drawn on; default Date.now. */
  readonly now?: () => number;
}

/** RunningAdmin is a running admin server. */
export interface RunningAdmin {
  /** address is `host:port`. */
  readonly address: string;
  /** url is the dashboard's URL, `http://host:port/`. */
  readonly url: string;
  /** close detaches from the transports and servers, ends the event streams and stops listening. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** ADMIN_DEFAULTS are the defaults documented on ServeAdminOptions. */
export const ADMIN_DEFAULTS = Object.freeze({ port: 0, host: "127.0.0.1", intervalMs: 1_000 });

// How many new calls one push carries at most: the tap view shows the latest,
// and a busy client must not turn the event stream into a firehose.
const CALLS_PER_PUSH = 50;

// Past this much unsent data a stream's reader is not keeping up: skip it.
const MAX_STREAM_BACKLOG_BYTES = 1024 * 1024;

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/**
 * serveAdmin starts the admin HTTP server (node:http): the live dashboard at
 * `/`, JSON at `/api/state`, `/api/transports`, `/api/servers` and
 * `/api/tap`, Server-Sent Events at `/api/events` (the state every
 * `intervalMs`, plus the calls finished since), Prometheus `/metrics` and
 * `/healthz`; with `channelz`, gRPC's channelz service on the same port. It attaches to the transports' and servers' `tap()` while it
 * runs; nothing is attached, and calls pay nothing, before or after.
 */
export function serveAdmin(options: ServeAdminOptions = {}): Promise<RunningAdmin> {
  let stats: AdminStats;
  try {
    validateAdminOptions(options);
    stats = createAdminStats(options);
  } catch (e) {
    return Promise.reject(e);
  }
  const o = { ...ADMIN_DEFAULTS, ...options };
  const now = o.now ?? Date.now;
  const transports = [...(o.transports ?? [])];
  const servers = [...(o.servers ?? [])];
  const serveMetrics =
    o.metrics === undefined ? undefined : metricsHandler(o.metrics, { path: "/metrics" });

  const observer: MeshTapObserver<unknown> = {
    onCall: (call) => stats.recordCall(call, now()),
    onEvent: (event) => stats.recordEvent(event, now()),
  };
  const detach: (() => void)[] = [];
  for (const t of [...transports, ...servers]) {
    detach.push((t.tap as (o: MeshTapObserver<unknown>) => () => void)(observer));
  }

  const transportsJson = () =>
    transports.map((t, i) => snapshotOf(t, { id: `transport-${i}`, target: t.target }));
  const serversJson = () =>
    servers.map((s, i) =>
      snapshotOf(s, { id: `server-${i}`, address: s.address?.address, inFlight: s.inFlight }),
    );
  const state = () => ({
    at: now(),
    transports: transportsJson(),
    servers: serversJson(),
    stats: stats.view(now()),
  });

  const streams = new Set<{ res: ServerResponse; seq: number }>();
  const push = () => {
    if (streams.size === 0) return;
    const body = JSON.stringify(state());
    for (const s of streams) {
      // A page that stopped reading (a suspended tab) gets no more until it drains.
      if (s.res.writableLength > MAX_STREAM_BACKLOG_BYTES) continue;
      const fresh = stats.callsSince(s.seq);
      s.seq = fresh.seq;
      s.res.write(`event: state\ndata: ${body}\n\n`);
      if (fresh.calls.length > 0) {
        const calls = fresh.calls.slice(-CALLS_PER_PUSH);
        s.res.write(`event: calls\ndata: ${JSON.stringify(calls)}\n\n`);
      }
    }
  };
  const timer = setInterval(push, o.intervalMs);
  timer.unref();

  let allowedHosts: Set<string> | undefined;
  const server = createServer((req, res) => {
    // A page on any website can make the browser talk to a loopback port
    // through a DNS name it rebinds to 127.0.0.1: only our own names pass.
    if (allowedHosts !== undefined && !allowedHosts.has((req.headers.host ?? "").toLowerCase())) {
      send(res, 403, "text/plain; charset=utf-8", "host not allowed\n");
      return;
    }
    const path = new URL(req.url ?? "/", "http://admin").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end();
      return;
    }
    switch (path) {
      case "/":
      case "/index.html":
        send(res, 200, "text/html; charset=utf-8", DASHBOARD_HTML, req, {
          "content-security-policy":
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        });
        return;
      case "/favicon.ico":
        res.writeHead(204, { "cache-control": "max-age=86400" }).end();
        return;
      case "/healthz":
        sendJson(res, { status: "ok" }, req);
        return;
      case "/api/state":
        sendJson(res, state(), req);
        return;
      case "/api/transports":
        sendJson(res, transportsJson(), req);
        return;
      case "/api/servers":
        sendJson(res, serversJson(), req);
        return;
      case "/api/tap":
        sendJson(res, stats.tail(), req);
        return;
      case "/api/events":
        openStream(req, res);
        return;
      case "/metrics":
        if (serveMetrics !== undefined) {
          serveMetrics(req, res);
          return;
        }
        send(res, 404, "text/plain; charset=utf-8", "no metrics configured\n");
        return;
      default:
        send(res, 404, "text/plain; charset=utf-8", "not found\n");
    }
  });

  function openStream(req: IncomingMessage, res: ServerResponse) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-store",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    // The state first, so a new page draws at once; then the last calls.
    const s = { res, seq: stats.callsSince(0).seq };
    res.write(`retry: 2000\n\nevent: state\ndata: ${JSON.stringify(state())}\n\n`);
    const last = stats.tail(CALLS_PER_PUSH);
    if (last.length > 0) res.write(`event: calls\ndata: ${JSON.stringify(last)}\n\n`);
    streams.add(s);
    req.on("close", () => streams.delete(s));
  }

  // With channelz, one TCP port serves both: HTTP/1.1 to the page, h2c to gRPC.
  let listener: Server = server;
  let sockets: Set<Socket> | undefined;
  if (o.channelz === true) {
    const channelz = createChannelzService({
      transports: transports.filter(hasSnapshot),
      servers: servers.filter(hasSnapshot),
    });
    const grpc = createHttp2Server(
      connectNodeAdapter({ routes: (router) => router.service(Channelz, channelz) }),
    );
    ({ server: listener, sockets } = createSniffingServer(server, grpc));
  }

  return new Promise((resolve, reject) => {
    const fail = (e: Error) => {
      clearInterval(timer);
      for (const d of detach) d();
      reject(e);
    };
    listener.once("error", fail);
    listener.listen(o.port, o.host, () => {
      listener.off("error", fail);
      const info = listener.address() as AddressInfo;
      const address = formatAddress(info.address, info.port);
      if (LOOPBACK.has(o.host) || info.address === "127.0.0.1" || info.address === "::1") {
        allowedHosts = new Set(
          [address, `localhost:${info.port}`, `127.0.0.1:${info.port}`, `[::1]:${info.port}`].map(
            (h) => h.toLowerCase(),
          ),
        );
      }
      let closed: Promise<void> | undefined;
      const admin: RunningAdmin = {
        address,
        url: `http://${address}/`,
        close() {
          closed ??= new Promise<void>((done) => {
            clearInterval(timer);
            for (const d of detach) d();
            for (const s of streams) s.res.end();
            streams.clear();
            listener.close(() => done());
            server.closeAllConnections();
            for (const socket of sockets ?? []) socket.destroy();
          });
          return closed;
        },
        [Symbol.asyncDispose]() {
          return admin.close();
        },
      };
      resolve(admin);
    });
  });
}

function hasSnapshot<T extends { snapshot?: unknown }>(
  x: T,
): x is T & { snapshot: Exclude<T["snapshot"], undefined> } {
  return typeof x.snapshot === "function";
}

function snapshotOf(
  source: { snapshot?(): unknown },
  fallback: Record<string, unknown>,
): Record<string, unknown> {
  if (typeof source.snapshot !== "function") return fallback;
  try {
    const snap = source.snapshot();
    return typeof snap === "object" && snap !== null
      ? { ...fallback, ...(snap as Record<string, unknown>) }
      : fallback;
  } catch (e) {
    return { ...fallback, error: `snapshot failed: ${e instanceof Error ? e.message : String(e)}` };
  }
}

function sendJson(res: ServerResponse, body: unknown, req?: IncomingMessage): void {
  send(res, 200, "application/json; charset=utf-8", JSON.stringify(body), req);
}

function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string,
  req?: IncomingMessage,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": contentType,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(req?.method === "HEAD" ? undefined : body);
}

function validateAdminOptions(o: ServeAdminOptions): void {
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535)) {
    throw new RangeError(`port ${o.port} must be an integer in 0..65535`);
  }
  if (o.host !== undefined && (typeof o.host !== "string" || o.host === "")) {
    throw new TypeError(`host ${JSON.stringify(o.host)} must be a non-empty string`);
  }
  if (
    o.intervalMs !== undefined &&
    !(Number.isFinite(o.intervalMs) && o.intervalMs >= 50 && o.intervalMs <= 60_000)
  ) {
    throw new RangeError(`intervalMs ${o.intervalMs} must be in 50..60000`);
  }
  for (const [name, list] of [
    ["transports", o.transports],
    ["servers", o.servers],
  ] as const) {
    if (list === undefined) continue;
    if (!Array.isArray(list)) {
      throw new TypeError(`${name} must be an array`);
    }
    list.forEach((t: unknown, i: number) => {
      if (typeof (t as { tap?: unknown } | null)?.tap !== "function") {
        throw new TypeError(`${name}[${i}] has no tap(): pass a mesh ${name.slice(0, -1)}`);
      }
    });
  }
  if (o.metrics !== undefined && typeof o.metrics.text !== "function") {
    throw new TypeError("metrics must come from createMetrics()");
  }
  if (o.channelz !== undefined && typeof o.channelz !== "boolean") {
    throw new TypeError(`channelz ${JSON.stringify(o.channelz)} must be a boolean`);
  }
  if (o.now !== undefined && typeof o.now !== "function") {
    throw new TypeError("now must be a function returning epoch ms");
  }
}
