import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { BalancerEvent } from "../balancer/balancer-events.js";
import type { BreakerEvent } from "../breaker/breaker-events.js";
import type { CircuitState } from "../breaker/circuit-breaker.js";
import { formatAddress } from "../discovery/address.js";
import type { LimitEvent } from "../limit/limit-events.js";
import type { MirrorEvent } from "../mirror/mirror-events.js";
import type { RetryEvent } from "../retry/retry-events.js";
import { type MeshEvent, meshEventKind } from "./mesh-event.js";

type PromClient = typeof import("prom-client");

/** RpcLabels name one method the way go-grpc-prometheus labels it. */
export interface RpcLabels {
  /** service is the fully-qualified service name (`grpc_service`). */
  readonly service: string;
  /** method is the method name (`grpc_method`). */
  readonly method: string;
  /** type is `unary`, `client_stream`, `server_stream` or `bidi_stream` (`grpc_type`). */
  readonly type: string;
}

/**
 * MeshMetrics holds the mesh's Prometheus metrics in one registry. The
 * observe interceptors record calls through it; connect event sources to its
 * `on…Event` handlers for the mesh's own metrics.
 *
 * go-grpc-prometheus names: `grpc_server_started_total`,
 * `grpc_server_handled_total{grpc_code}`, `grpc_server_handling_seconds`, and
 * the `grpc_client_…` equivalents (labels grpc_service, grpc_method, grpc_type).
 * Ours: `mesh_client_retries_total`, `mesh_retry_budget_exhausted_total`,
 * `mesh_breaker_state{key}` (0 closed, 1 half-open, 2 open),
 * `mesh_outlier_ejections_total`, `mesh_idempotency_replays_total`,
 * `mesh_endpoints{target}`, `mesh_concurrency_limit{key}` (the current
 * adaptive limit; key `"pkg.Service/Method"` or `"*"`),
 * `mesh_concurrency_shed_total{grpc_service,grpc_method,criticality}`,
 * `mesh_mirror_calls_total{target, outcome}`.
 */
export interface MeshMetrics {
  /** registry holds the metrics (a prom-client `Registry`); scrape it, or merge it into yours. */
  readonly registry: MetricsRegistry;
  /** text renders the registry in the Prometheus text format. */
  text(): Promise<string>;
  /** contentType is the Content-Type of `text()`. */
  readonly contentType: string;
  /** serverStarted counts a server call that started. */
  serverStarted(labels: RpcLabels): void;
  /** serverHandled counts a finished server call and observes its duration. */
  serverHandled(labels: RpcLabels, code: string, seconds: number): void;
  /** clientStarted counts a logical client call that started. */
  clientStarted(labels: RpcLabels): void;
  /** clientHandled counts a finished logical client call and observes its duration. */
  clientHandled(labels: RpcLabels, code: string, seconds: number): void;
  /** idempotencyReplayed counts a response replayed from the idempotency store. */
  idempotencyReplayed(labels: RpcLabels): void;
  /** onBalancerEvent feeds `mesh_endpoints` and `mesh_outlier_ejections_total`. */
  onBalancerEvent(event: BalancerEvent): void;
  /** onBreakerEvent feeds `mesh_breaker_state`. */
  onBreakerEvent(event: BreakerEvent): void;
  /** onRetryEvent feeds `mesh_client_retries_total` and `mesh_retry_budget_exhausted_total`. */
  onRetryEvent(event: RetryEvent): void;
  /** onLimitEvent feeds `mesh_concurrency_limit` and `mesh_concurrency_shed_total`. */
  onLimitEvent(event: LimitEvent): void;
  /** onMirrorEvent feeds `mesh_mirror_calls_total` (outcome sent, dropped or failed). */
  onMirrorEvent(event: MirrorEvent): void;
  /** onEvent takes any MeshEvent (a transport's `onEvent`) and feeds the metrics above. */
  onEvent(event: MeshEvent): void;
}

/**
 * MetricsRegistry is the part of a prom-client `Registry` the mesh uses. It is
 * declared here, not imported, so that the package's types compile without the
 * optional prom-client installed; a prom-client `Registry` is one (cast
 * `metrics.registry` to `Registry` for `Registry.merge`).
 */
export interface MetricsRegistry {
  /** contentType is the Content-Type of `metrics()`. */
  readonly contentType: string;
  /** metrics renders the registry in the Prometheus text format. */
  metrics(): Promise<string>;
  /** getSingleMetric returns the metric registered under name, if any. */
  getSingleMetric(name: string): unknown;
}

/** MetricsOptions configures createMetrics. */
export interface MetricsOptions {
  /**
   * registry to register in; default a new one (pass prom-client's global
   * `register` to serve them with your other metrics). Metrics already in it
   * under the same names are reused, so two createMetrics share them.
   */
  readonly registry?: MetricsRegistry;
  /** buckets of the handling-time histograms in seconds; default prom-client's (5 ms to 10 s). */
  readonly buckets?: readonly number[];
}

/** BREAKER_STATE_VALUES are the values of the `mesh_breaker_state` gauge. */
export const BREAKER_STATE_VALUES: Readonly<Record<CircuitState["type"], number>> = Object.freeze({
  closed: 0,
  "half-open": 1,
  open: 2,
});

const RPC = ["grpc_service", "grpc_method", "grpc_type"] as const;
const RPC_CODE = [...RPC, "grpc_code"] as const;

/**
 * createMetrics builds the mesh metrics. prom-client is an optional peer
 * dependency, imported here; without it this rejects saying how to install it.
 */
export async function createMetrics(options: MetricsOptions = {}): Promise<MeshMetrics> {
  if (options.buckets !== undefined) {
    const b = options.buckets;
    if (b.length === 0 || b.some((x, i) => !(x > 0) || (i > 0 && !(x > (b[i - 1] ?? 0))))) {
      throw new RangeError(`buckets ${JSON.stringify(b)} must be positive and increasing`);
    }
  }
  const prom = await loadPromClient();
  const registry = (options.registry as Registry | undefined) ?? new prom.Registry();
  const buckets = options.buckets === undefined ? {} : { buckets: [...options.buckets] };

  function counter<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    return (registry.getSingleMetric(name) ??
      new prom.Counter({ name, help, labelNames, registers: [registry] })) as Counter<L>;
  }
  function gauge<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    return (registry.getSingleMetric(name) ??
      new prom.Gauge({ name, help, labelNames, registers: [registry] })) as Gauge<L>;
  }
  function histogram<L extends string>(name: string, help: string, labelNames: readonly L[]) {
    return (registry.getSingleMetric(name) ??
      new prom.Histogram({
        name,
        help,
        labelNames,
        registers: [registry],
        ...buckets,
      })) as Histogram<L>;
  }

  const serverStarted = counter(
    "grpc_server_started_total",
    "Total number of RPCs started on the server.",
    RPC,
  );
  const serverHandled = counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    RPC_CODE,
  );
  const serverSeconds = histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    RPC,
  );
  const clientStarted = counter(
    "grpc_client_started_total",
    "Total number of RPCs started on the client.",
    RPC,
  );
  const clientHandled = counter(
    "grpc_client_handled_total",
    "Total number of RPCs completed by the client, regardless of success or failure.",
    RPC_CODE,
  );
  const clientSeconds = histogram(
    "grpc_client_handling_seconds",
    "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
    RPC,
  );
  const retries = counter(
    "mesh_client_retries_total",
    "Total number of retry attempts started by mesh clients.",
    ["grpc_service", "grpc_method"],
  );
  const budgetExhausted = counter(
    "mesh_retry_budget_exhausted_total",
    "Total number of retries refused because the retry budget was empty.",
    ["target"],
  );
  const breakerState = gauge(
    "mesh_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["key"],
  );
  const ejections = counter(
    "mesh_outlier_ejections_total",
    "Total number of endpoints ejected by outlier detection.",
    ["target", "reason"],
  );
  const replays = counter(
    "mesh_idempotency_replays_total",
    "Total number of responses replayed from the idempotency store.",
    ["grpc_service", "grpc_method"],
  );
  const mirrorCalls = counter(
    "mesh_mirror_calls_total",
    "Total number of mirrored calls by outcome: sent to the shadow, dropped at the in-flight bound, failed.",
    ["target", "outcome"],
  );
  const endpoints = gauge(
    "mesh_endpoints",
    "Number of endpoints the balancer holds for a target.",
    ["target"],
  );

  const concurrencyLimit = gauge(
    "mesh_concurrency_limit",
    "Current adaptive concurrency limit of a method (key pkg.Service/Method) or server (key *).",
    ["key"],
  );
  const shed = counter(
    "mesh_concurrency_shed_total",
    "Total number of calls refused by a concurrency limit, by criticality.",
    ["grpc_service", "grpc_method", "criticality"],
  );

  const rpc = (l: RpcLabels) => ({
    grpc_service: l.service,
    grpc_method: l.method,
    grpc_type: l.type,
  });

  const metrics: MeshMetrics = {
    registry,
    get contentType() {
      return registry.contentType;
    },
    text: () => registry.metrics(),
    serverStarted(l) {
      serverStarted.inc(rpc(l));
    },
    serverHandled(l, code, seconds) {
      // Keys written one by one: a spread followed by a new key takes V8's slow path.
      serverHandled.inc({
        grpc_service: l.service,
        grpc_method: l.method,
        grpc_type: l.type,
        grpc_code: code,
      });
      serverSeconds.observe(rpc(l), seconds);
    },
    clientStarted(l) {
      clientStarted.inc(rpc(l));
    },
    clientHandled(l, code, seconds) {
      // Keys written one by one: a spread followed by a new key takes V8's slow path.
      clientHandled.inc({
        grpc_service: l.service,
        grpc_method: l.method,
        grpc_type: l.type,
        grpc_code: code,
      });
      clientSeconds.observe(rpc(l), seconds);
    },
    idempotencyReplayed(l) {
      replays.inc({ grpc_service: l.service, grpc_method: l.method });
    },
    onBalancerEvent(e) {
      if (e.source === "balancer" && e.type === "endpoints") {
        endpoints.set({ target: e.target }, e.size);
      } else if (e.source === "outlier" && e.type === "ejected") {
        ejections.inc({ target: e.target, reason: e.reason });
      }
    },
    onBreakerEvent(e) {
      breakerState.set({ key: e.key }, BREAKER_STATE_VALUES[e.to] ?? 0);
    },
    onRetryEvent(e) {
      if (e.type === "retry") {
        const slash = e.method.lastIndexOf("/");
        retries.inc({
          grpc_service: e.method.slice(0, Math.max(0, slash)),
          grpc_method: e.method.slice(slash + 1),
        });
      } else if (e.type === "budget-exhausted") {
        budgetExhausted.inc({ target: e.target });
      }
    },
    onLimitEvent(e) {
      if (e.type === "limit-changed") {
        concurrencyLimit.set({ key: e.key }, e.to);
      } else if (e.type === "shed") {
        const slash = e.method.lastIndexOf("/");
        shed.inc({
          grpc_service: e.method.slice(0, Math.max(0, slash)),
          grpc_method: e.method.slice(slash + 1),
          criticality: e.criticality,
        });
      }
    },
    onMirrorEvent(e) {
      mirrorCalls.inc({ target: e.target, outcome: e.type.slice("mirror-".length) });
    },
    onEvent(e) {
      const kind = meshEventKind(e);
      if (kind === "balancer") metrics.onBalancerEvent(e as BalancerEvent);
      else if (kind === "breaker") metrics.onBreakerEvent(e as BreakerEvent);
      else if (kind === "retry") metrics.onRetryEvent(e as RetryEvent);
      else if (kind === "limit") metrics.onLimitEvent(e as LimitEvent);
      else if (kind === "mirror") metrics.onMirrorEvent(e as MirrorEvent);
    },
  };
  return metrics;
}

/**
 * loadPromClient imports prom-client, or rejects with an error saying to
 * install it (it is an optional peer dependency).
 * @internal kept out of the published types, which must not need prom-client.
 */
export async function loadPromClient(
  importer: () => Promise<unknown> = () => import("prom-client"),
): Promise<PromClient> {
  let mod: unknown;
  try {
    mod = await importer();
  } catch (cause) {
    throw new Error(
      "connect-mesh metrics need the optional peer dependency prom-client (>= 15): run `npm install prom-client`",
      { cause },
    );
  }
  const m = mod as PromClient & { default?: PromClient };
  return typeof m.Registry === "function" ? m : (m.default ?? m);
}

/** MetricsHandlerOptions configures metricsHandler. */
export interface MetricsHandlerOptions {
  /** path answered with the metrics; other paths get 404. Default `/metrics`; `undefined` answers every path. */
  readonly path?: string | undefined;
}

/**
 * metricsHandler returns a node:http request listener that serves the
 * metrics on GET (and HEAD) `path`, for your own HTTP server.
 */
export function metricsHandler(
  metrics: MeshMetrics,
  options: MetricsHandlerOptions = { path: "/metrics" },
): (req: IncomingMessage, res: ServerResponse) => void {
  const path = options.path;
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (path !== undefined && url.pathname !== path) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end();
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end(`metrics failed: ${String(error)}\n`);
      },
    );
  };
}

/** ServeMetricsOptions says where serveMetrics listens. */
export interface ServeMetricsOptions {
  readonly metrics: MeshMetrics;
  /** port to bind; 0 picks a free one. Default 9464 (the OpenTelemetry Prometheus exporter's). */
  readonly port?: number;
  /** host to bind; default `127.0.0.1` (metrics are not for the world). */
  readonly host?: string;
  /** path of the metrics; default `/metrics`. */
  readonly path?: string;
}

/** MetricsServer is a running admin HTTP server serving the metrics. */
export interface MetricsServer {
  /** address is `host:port`. */
  readonly address: string;
  /** url is the metrics URL, `http://host:port/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/** serveMetrics starts an admin HTTP server (node:http) serving `/metrics`. */
export function serveMetrics(options: ServeMetricsOptions): Promise<MetricsServer> {
  const port = options.port ?? 9464;
  const host = options.host ?? "127.0.0.1";
  const path = options.path ?? "/metrics";
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new RangeError(`port ${port} must be an integer in 0..65535`));
  }
  const server = createServer(metricsHandler(options.metrics, { path }));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const info = server.address() as AddressInfo;
      const address = formatAddress(info.address, info.port);
      resolve({
        address,
        url: `http://${address}${path}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}
