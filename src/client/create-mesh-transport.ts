import { setMaxListeners } from "node:events";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodStreaming,
  type DescMethodUnary,
  isMessage,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { createMethodUrl } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import { createCallCounters } from "../admin/call-counters.js";
import {
  createTransportSnapshotter,
  type TransportSnapshotter,
} from "../admin/transport-snapshotter.js";
import {
  type BalancerEvent,
  createBalancer,
  type LoadBalancingPolicy,
  NoEndpointError,
} from "../balancer/balancer.js";
import type { LoadPenaltyOptions } from "../balancer/load-penalty.js";
import type { OutlierDetectorOptions } from "../balancer/outlier-detector.js";
import type { PeakEwmaOptions } from "../balancer/peak-ewma.js";
import type { SlowStartOptions } from "../balancer/slow-start.js";
import type { TrafficPolicy } from "../balancer/traffic-policy.js";
import {
  type BreakerEvent,
  type BreakerOptions,
  createBreakerInterceptor,
} from "../breaker/breaker-interceptor.js";
import { createAbortFanout } from "../call/abort-fanout.js";
import { callOutcomeKey } from "../call/attempt.js";
import { currentCallScope } from "../call/call-scope.js";
import { createEventEmitter } from "../call/event-emitter.js";
import { createMeshCall, meshCallKey } from "../call/mesh-call.js";
import { deadlineSignal } from "../call/signals.js";
import { createMeshTap, type MeshTapObserver } from "../call/tapped-call.js";
import { buildClientChain, composeChain } from "../chain/client-chain.js";
import { type Clock, systemClock } from "../clock.js";
import { defaultLogger, SILENT_LOGGER } from "../default-logger.js";
import { createResolver, type ResolverChoice } from "../discovery/create-resolver.js";
import { parseTarget } from "../discovery/target.js";
import {
  createEndpointTransport,
  type EndpointTransport,
  type EndpointTransportOptions,
} from "../grpc/endpoint-transport.js";
import {
  createIdempotencyKeyInterceptor,
  type IdempotencyKeyInterceptorOptions,
} from "../idempotency/client-key-interceptor.js";
import { createClientIdentity } from "../identity/client-identity.js";
import { type ClientRateLimitOptions, createClientRateLimit } from "../limit/client-rate-limit.js";
import {
  type CriticalityOption,
  createCriticalityInterceptor,
} from "../limit/criticality-interceptor.js";
import type { MirrorEvent } from "../mirror/mirror-events.js";
import { createMirror, type MirrorOptions } from "../mirror/mirror-interceptor.js";
import { createClientAttemptInterceptor } from "../observability/client-attempt-interceptor.js";
import {
  type ClientObserveOptions,
  createClientObserveInterceptor,
} from "../observability/client-observe-interceptor.js";
import { createEventLogger } from "../observability/event-logger.js";
import type { MeshMetrics } from "../observability/metrics.js";
import {
  createRetryStage,
  type RetryEvent,
  type RetryOptions,
} from "../retry/retry-interceptor.js";
import type { TransportSnapshot } from "../state/snapshot.js";
import { createAttemptStep } from "./attempt-step.js";
import { runStreamCall } from "./run-stream-call.js";

/** MeshTransportOptions configures createMeshTransport. */
export interface MeshTransportOptions extends EndpointTransportOptions, ResolverChoice {
  /**
   * target is where calls go, as a gRPC-style target URI: `host:port`,
   * `static:///a:1,b:2`, `dns:///host:port`, `dns+srv:///_grpc._tcp.name`,
   * `mesh:///service`, `etcd:///service`.
   */
  readonly target: string;
  /** policy picks an endpoint per attempt; default `p2c-ewma`. */
  readonly policy?: LoadBalancingPolicy;
  /** outlierDetection ejects failing endpoints (defaults in OUTLIER_DETECTOR_DEFAULTS); false turns it off. */
  readonly outlierDetection?: OutlierDetectorOptions | false;
  /** slowStart ramps a new endpoint's share (p2c-ewma), e.g. `{ windowMs: 30_000 }`; default off. */
  readonly slowStart?: SlowStartOptions | false;
  /** ewma tunes peak-EWMA (decayMs default 10 s, seedRttMs). */
  readonly ewma?: PeakEwmaOptions;
  /**
   * removalGraceMs keeps an endpoint that left the resolver's set in use for
   * this long while it still answers (stabilized endpoint sets: a registry
   * outage that deletes and re-adds every record does not empty the set);
   * default BALANCER_DEFAULTS.removalGraceMs (5_000), 0 applies removals at once.
   */
  readonly removalGraceMs?: number;
  /**
   * firstResolutionTimeoutMs bounds how long a call with no deadline waits for
   * the first endpoints before failing with UNAVAILABLE; default 10_000.
   */
  readonly firstResolutionTimeoutMs?: number;
  /**
   * retry configures deadline-aware retries (RETRY_POLICY_DEFAULTS: 3
   * attempts, UNAVAILABLE only, safe methods only, budget 20% + 10/s); false
   * turns them off.
   */
  readonly retry?: RetryOptions | false;
  /**
   * circuitBreaker configures the per-method breakers (CIRCUIT_BREAKER_DEFAULTS:
   * open at 50% failures over 10 s with at least 20 calls, 5 s doubling to
   * 60 s, 3 probes); false turns them off.
   */
  readonly circuitBreaker?: BreakerOptions | false;
  /**
   * idempotencyKeys adds an `idempotency-key` (UUIDv4) once per logical call
   * to methods that are not NO_SIDE_EFFECTS (mode "auto", the default), to a
   * list of methods, or only when the caller gives one ("caller-only"). The
   * same key goes on every retry and hedge, which makes such calls safe to
   * retry against servers that de-duplicate (mesh servers do by default).
   * false turns it off.
   */
  readonly idempotencyKeys?: IdempotencyKeyInterceptorOptions | false;
  /**
   * logger receives one JSON line per finished call (debug: per attempt) and
   * the mesh events; default pino: JSON lines to stdout at `MESH_LOG_LEVEL`
   * when set, else warnings and errors to stderr; false logs nothing (traces
   * still flow).
   */
  readonly logger?: Logger | false;
  /** metrics records grpc_client_* and mesh_* metrics (`await createMetrics()`); default none. */
  readonly metrics?: MeshMetrics;
  /** logging: log redacted headers (off) and redact more header names. */
  readonly logging?: Pick<ClientObserveOptions, "redactHeaders" | "logHeaders">;
  /** onEvent receives resolver, balancer, ejection, retry and breaker events. */
  readonly onEvent?: (event: MeshTransportEvent) => void;
  /**
   * interceptors are the user's client interceptors; they run once per logical
   * call, outermost (see CLIENT_INTERCEPTOR_ORDER).
   */
  readonly interceptors?: readonly Interceptor[];
  /**
   * criticality sets `x-mesh-criticality` (critical, default, sheddable) on
   * calls, for every method or per `"pkg.Service/Method"` / `"pkg.Service"`;
   * a header set on the call wins. Loaded servers refuse sheddable calls
   * first. Default none (servers read `default`).
   */
  readonly criticality?: CriticalityOption;
  /** defaultTimeoutMs applies to calls that set no `timeoutMs`; default none. */
  readonly defaultTimeoutMs?: number;
  /**
   * inheritDeadline makes calls made inside a mesh server handler inherit the
   * incoming call's remaining deadline and cancellation; default true.
   */
  readonly inheritDeadline?: boolean;
  /** clock drives deadline arithmetic; default the system clock. */
  readonly clock?: Clock;
  /**
   * trafficPolicy routes calls by header, splits them over endpoint subsets
   * by registry metadata (`{ version: "1.5.0" }` gets 10%) and prefers the
   * client's zone (see TrafficPolicy); default none. Change it at run time
   * with `setTrafficPolicy`.
   */
  readonly trafficPolicy?: TrafficPolicy;
  /**
   * loadPenalty makes p2c-ewma send fewer calls to an endpoint that sheds
   * load: each RESOURCE_EXHAUSTED answer with `grpc-retry-pushback-ms` counts
   * as a call in flight to it for the pushback time (LOAD_PENALTY_DEFAULTS);
   * default on, false turns it off.
   */
  readonly loadPenalty?: LoadPenaltyOptions | false;
  /**
   * rateLimit caps the calls this transport sends (token bucket per target or
   * per method): calls over it fail at once with RESOURCE_EXHAUSTED and
   * `grpc-retry-pushback-ms`, nothing sent; default none.
   */
  readonly rateLimit?: ClientRateLimitOptions;
  /**
   * mirror copies a share of unary calls, fire-and-forget, to a shadow target
   * or transport (`{ shadow, share: 0.1 }`): at most maxInFlight (16) at once,
   * each with its own timeoutMs (1_000), marked `x-mesh-mirror: 1`; see
   * createMirror. Default off.
   */
  readonly mirror?: MirrorOptions;
}

/** MeshTransportEvent is any typed event a mesh transport reports. */
export type MeshTransportEvent = BalancerEvent | RetryEvent | BreakerEvent | MirrorEvent;

/**
 * MeshTransport is a Connect `Transport` for `createClient(Desc, transport)`
 * that owns its HTTP/2 sessions.
 */
export interface MeshTransport extends Transport {
  /** target is the target string the transport was built with. */
  readonly target: string;
  /**
   * close fails new calls with UNAVAILABLE, cancels calls in flight and closes
   * every HTTP/2 session. Idempotent.
   */
  close(): Promise<void>;
  /**
   * tap attaches an observer of finished calls (redacted headers, trace id,
   * endpoint) and events, e.g. an admin server; returns the detach function.
   * While no observer is attached, calls build nothing for it.
   */
  tap(observer: MeshTapObserver<MeshTransportEvent>): () => void;
  /**
   * snapshot describes the transport's state now: resolver, endpoints (load,
   * connection, share of the last picks, ejections), call counts, retry
   * budget, hedging and breakers. Frozen and JSON-serialisable; it reads
   * counters the call path keeps anyway, so taking one costs calls nothing.
   */
  snapshot(): TransportSnapshot;
  [Symbol.asyncDispose](): Promise<void>;
  /**
   * setTrafficPolicy swaps the traffic policy (undefined removes it); the next
   * attempt follows the new one, calls in flight keep their endpoint. A bad
   * policy throws TypeError/RangeError naming the bad value and leaves the
   * old one in force.
   */
  setTrafficPolicy(policy: TrafficPolicy | undefined): void;
}

const DEFAULTS = { inheritDeadline: true, firstResolutionTimeoutMs: 10_000 } as const;

/**
 * createMeshTransport returns a transport speaking gRPC over HTTP/2 to the
 * target, with one session per endpoint. One deadline covers the whole call;
 * each attempt rewrites `grpc-timeout` to the time then left (Connect computes
 * it once, before interceptors), so servers always see the true remainder.
 */
export function createMeshTransport(options: MeshTransportOptions): MeshTransport {
  const opts = { ...DEFAULTS, ...options };
  const clock = opts.clock ?? systemClock;
  validateTransportOptions(opts);
  // Built (and validated) before any session or timer exists.
  const criticality =
    opts.criticality === undefined ? undefined : createCriticalityInterceptor(opts.criticality);
  const target = parseTarget(opts.target);
  // The URL only names the method in Connect's request objects; each attempt
  // goes to the endpoint the balancer picks.
  const baseUrl = `${opts.tls === undefined && opts.identity === undefined ? "http" : "https"}://${target.endpoint.split(",")[0] ?? ""}`;
  const logger = opts.logger === false ? SILENT_LOGGER : (opts.logger ?? defaultLogger());
  const eventLogger = createEventLogger(logger);
  const meshTap = createMeshTap<MeshTransportEvent>();
  // Built once the parts it reads exist; it counts the retry and breaker events.
  let snapshotter: TransportSnapshotter | undefined;
  const onEvent = createEventEmitter<MeshTransportEvent>(
    eventLogger.onEvent,
    opts.metrics?.onEvent.bind(opts.metrics),
    opts.onEvent,
    meshTap.events.emit,
    (e) => snapshotter?.onEvent(e),
  );
  const closing = new AbortController();
  // Every call in flight listens to this signal: many are expected.
  setMaxListeners(0, closing.signal);
  // Every call in flight without its own signal or deadline watches this one.
  createAbortFanout(closing.signal);
  const balancer = createBalancer<EndpointTransport>({
    target: opts.target,
    resolver: createResolver(target, opts, clock),
    createSubchannel: (endpoint) => createEndpointTransport(endpoint.address, opts),
    clock,
    ...(opts.policy === undefined ? {} : { policy: opts.policy }),
    ...(opts.outlierDetection === undefined ? {} : { outlierDetection: opts.outlierDetection }),
    ...(opts.slowStart === undefined ? {} : { slowStart: opts.slowStart }),
    ...(opts.ewma === undefined ? {} : { ewma: opts.ewma }),
    ...(opts.removalGraceMs === undefined ? {} : { removalGraceMs: opts.removalGraceMs }),
    ...(opts.trafficPolicy === undefined ? {} : { trafficPolicy: opts.trafficPolicy }),
    ...(opts.loadPenalty === undefined ? {} : { loadPenalty: opts.loadPenalty }),
    onEvent,
  });
  const breaker =
    opts.circuitBreaker === false
      ? undefined
      : createBreakerInterceptor(opts.circuitBreaker ?? {}, {
          target: opts.target,
          clock,
          onEvent,
        });
  const mirror =
    opts.mirror === undefined
      ? undefined
      : createMirror(opts.mirror, {
          target: opts.target,
          clock,
          onEvent,
          // The shadow's own events (endpoints, breaker) reach this
          // transport's listeners; its calls are neither logged nor metered
          // as the application's, nor retried.
          openShadow: (shadowTarget) =>
            createMeshTransport({
              ...opts,
              target: shadowTarget,
              mirror: undefined,
              interceptors: undefined,
              retry: false,
              idempotencyKeys: false,
              inheritDeadline: false,
              defaultTimeoutMs: undefined,
              logger: false,
              metrics: undefined,
              onEvent,
            }),
        });
  const retry =
    opts.retry === false
      ? undefined
      : createRetryStage(opts.retry ?? {}, {
          target: opts.target,
          clock,
          estimateLatencyMs: () => balancer.estimateLatencyMs(),
          onEvent,
          ...(breaker === undefined ? {} : { refusal: breaker.gate }),
        });
  // Logical-call counts for snapshots: outermost, so they see what the application sees.
  const calls = createCallCounters(clock);
  const interceptors = buildClientChain({
    user: [
      calls.interceptor,
      ...(opts.interceptors ?? []),
      ...(criticality === undefined ? [] : [criticality]),
    ],
    mirror: mirror?.interceptor,
    retry: retry?.interceptor,
    observe: createClientObserveInterceptor({
      ...opts.logging,
      logger,
      clock,
      ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
      tap: meshTap.calls,
      // The attempt-observe slot below writes every attempt's traceparent.
      attemptSpans: true,
    }),
    "idempotency-key":
      opts.idempotencyKeys === false
        ? undefined
        : createIdempotencyKeyInterceptor(opts.idempotencyKeys ?? {}),
    "attempt-observe": createClientAttemptInterceptor({ logger, clock }),
    "rate-limit":
      opts.rateLimit === undefined
        ? undefined
        : createClientRateLimit(opts.rateLimit, { target: opts.target, clock }),
    breaker: breaker?.interceptor,
  });

  const attempt = createAttemptStep({
    balancer,
    clock,
    firstResolutionTimeoutMs: opts.firstResolutionTimeoutMs,
  });
  const unaryChain = composeChain(interceptors, attempt);
  const streamChain = composeChain(
    interceptors,
    attempt as unknown as (req: StreamRequest) => Promise<StreamResponse>,
  );
  snapshotter = createTransportSnapshotter({
    target: opts.target,
    clock,
    balancer,
    calls,
    breakers: breaker?.registry,
    retry,
    isClosed: () => closing.signal.aborted,
  });
  const snapshot = snapshotter.snapshot;
  // Connect's request objects name the method by URL; built once per method.
  const urls = new WeakMap<DescMethod, string>();
  const urlOf = (method: DescMethod): string => {
    let url = urls.get(method);
    if (url === undefined) {
      url = createMethodUrl(baseUrl, method);
      urls.set(method, url);
    }
    return url;
  };

  // prepare links the caller's signal, the transport's close, and (inside a
  // mesh handler) the incoming call's signal and deadline.
  function prepare(
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    contextValues: ContextValues | undefined,
    own?: AbortSignal,
  ) {
    if (closing.signal.aborted) {
      throw new ConnectError(`transport for ${opts.target} is closed`, Code.Unavailable);
    }
    let effectiveMs =
      timeoutMs === undefined ? opts.defaultTimeoutMs : timeoutMs <= 0 ? undefined : timeoutMs;
    const scope = opts.inheritDeadline ? currentCallScope() : undefined;
    if (scope !== undefined) {
      const parentMs = scope.timeoutMs();
      if (parentMs !== undefined && (effectiveMs === undefined || parentMs < effectiveMs)) {
        effectiveMs = Math.max(0, parentMs);
      }
    }
    const link = deadlineSignal(clock, effectiveMs, [signal, closing.signal, scope?.signal, own]);
    const values = contextValues ?? createContextValues();
    const { call, report } = createMeshCall(
      opts.target,
      effectiveMs === undefined ? undefined : clock.now() + effectiveMs,
    );
    values.set(meshCallKey, call);
    values.set(callOutcomeKey, report);
    return { signal: link.signal, cleanup: link.cleanup, timeoutMs: effectiveMs, values };
  }

  const transport: MeshTransport = {
    target: opts.target,
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      // Unary calls skip Connect's runUnaryCall: the endpoint transport runs
      // it again per attempt, and one is enough. What it adds here is kept:
      // a call signal that aborts at the deadline, a normalized message, and
      // the signal's reason as the error once the call was aborted.
      const p = prepare(signal, timeoutMs, contextValues);
      try {
        return (await unaryChain({
          stream: false,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: urlOf(method),
          header: new Headers(header),
          contextValues: p.values,
          message: isMessage(input, method.input) ? input : create(method.input, input),
          signal: p.signal,
        } as UnaryRequest)) as UnaryResponse<I, O>;
      } catch (e) {
        throw explainFailure(e, p.signal);
      } finally {
        p.cleanup();
      }
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      // Connect's runStreamingCall is replaced as for unary calls: its two
      // wrappers and Promise.race per message were most of a stream's
      // client-side cost (runStreamCall says what it keeps).
      const own = new AbortController();
      const p = prepare(signal, timeoutMs, contextValues, own.signal);
      return runStreamCall(
        {
          req: {
            stream: true,
            service: method.parent,
            method,
            requestMethod: "POST",
            url: urlOf(method),
            header: new Headers(header),
            contextValues: p.values,
            message: input,
            signal: p.signal,
          } as StreamRequest,
          own,
          cleanup: p.cleanup,
          explain: (e) => explainFailure(e, p.signal),
        },
        streamChain,
      ) as Promise<StreamResponse<I, O>>;
    },
    close() {
      if (!closing.signal.aborted) {
        closing.abort(new ConnectError(`transport for ${opts.target} was closed`, Code.Canceled));
      }
      return Promise.all([balancer.close(), mirror?.close()]).then(() => undefined);
    },
    tap: meshTap.tap,
    snapshot,
    [Symbol.asyncDispose]() {
      return transport.close();
    },
    setTrafficPolicy(policy) {
      balancer.setTrafficPolicy(policy);
    },
  };
  return transport;
}

function validateTransportOptions(opts: MeshTransportOptions): void {
  if (typeof opts.target !== "string" || opts.target === "") {
    throw new TypeError(`target ${JSON.stringify(opts.target)} must be a non-empty string`);
  }
  if (opts.defaultTimeoutMs !== undefined && !(opts.defaultTimeoutMs > 0)) {
    throw new RangeError(`defaultTimeoutMs ${opts.defaultTimeoutMs} must be > 0`);
  }
  // Endpoints connect lazily: check identity and serverIdentities now.
  createClientIdentity(opts.identity, opts.serverIdentities);
}

/**
 * explainFailure is the error a call that failed before its response throws:
 * the signal's reason once the call was aborted, except that "no endpoint
 * became ready" explains a deadline better than the deadline itself.
 */
function explainFailure(e: unknown, signal: AbortSignal): ConnectError {
  const why = e instanceof ConnectError && e.cause instanceof NoEndpointError;
  return signal.aborted && !why
    ? ConnectError.from(signal.reason, Code.Canceled)
    : ConnectError.from(e);
}
