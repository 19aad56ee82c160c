import { setMaxListeners } from "node:events";
import {
  Code,
  type ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import { type BackoffOptions, createBackoff } from "../call/backoff.js";
import { peerKey } from "../call/server-call.js";
import { createServerInterceptors, serverCallGate } from "../chain/server-interceptors.js";
import { defaultLogger, SILENT_LOGGER } from "../default-logger.js";
import type { FaultInjector } from "../faults/fault-injection.js";
import { ErrorInfoSchema, IDEMPOTENCY_ERROR_DOMAIN } from "../idempotency/error-info.js";
import type { IdempotencyEvent } from "../idempotency/events.js";
import type { IdempotencyInterceptorOptions } from "../idempotency/server-interceptor.js";
import type { ConcurrencyLimitOptions } from "../limit/concurrency-limit.js";
import { traceFields } from "../observability/call-outcome-fields.js";
import { createEventLogger } from "../observability/event-logger.js";
import { codeName } from "../observability/grpc-fields.js";
import type { MeshMetrics } from "../observability/metrics.js";
import type { ServerObserveOptions } from "../observability/server-observe-interceptor.js";
import { parseTraceparent } from "../observability/trace-context.js";
import { stripUndefined } from "../strip-undefined.js";
import { decideFailure, QUEUE_TRANSIENT_CODES } from "./failure-policy.js";
import { invokeQueuedCall } from "./invoke-queued-call.js";
import type { DeadLetterReason, JobOutcome, Queue, QueuedJob, QueueError } from "./queue.js";
import { effectiveIdempotencyKey, procedureName } from "./queued-call.js";
import { queuedJobKey } from "./queued-job-key.js";

/** QueueWorkerOptions configures createQueueWorker. Defaults are in QUEUE_WORKER_DEFAULTS. */
export interface QueueWorkerOptions {
  /** queue to take jobs from. */
  readonly queue: Queue;
  /** routes registers the services that run jobs, as for createMeshServer. */
  readonly routes: (router: ConnectRouter) => void;
  /** concurrency is how many jobs run at once; default 10. */
  readonly concurrency?: number;
  /** interceptors are the user's server interceptors (the `user` slot), as for createMeshServer. */
  readonly interceptors?: readonly Interceptor[];
  /**
   * idempotency configures the interceptor that makes redelivery safe
   * (IDEMPOTENCY_DEFAULTS; the in-memory store unless `store` is given).
   * With several worker processes, or to survive a worker crash, give a
   * shared store: `createRedisIdempotencyStore()`. false turns it off, and
   * with it the guarantee that a redelivered job has one effect.
   */
  readonly idempotency?: IdempotencyInterceptorOptions | false;
  /** logger is the parent of every job's call logger; default pino at MESH_LOG_LEVEL; false: silent. */
  readonly logger?: Logger | false;
  /** metrics records grpc_server_* for queued calls, as for a server. */
  readonly metrics?: MeshMetrics;
  /** logging tunes the call lines, as for createMeshServer. */
  readonly logging?: Pick<
    ServerObserveOptions,
    "redact" | "redactHeaders" | "logHeaders" | "logPayloads"
  >;
  /** concurrencyLimit caps calls in flight per method (RESOURCE_EXHAUSTED: the job is retried). */
  readonly concurrencyLimit?: ConcurrencyLimitOptions;
  /** faults injects latency and errors right before the handler. */
  readonly faults?: FaultInjector;
  /** maxAttempts is the most attempts a job gets (transient failures); default 5. */
  readonly maxAttempts?: number;
  /** backoff spaces the retries (full jitter); default 1 s doubling to 60 s. */
  readonly backoff?: BackoffOptions;
  /** transientCodes are retried; default QUEUE_TRANSIENT_CODES. */
  readonly transientCodes?: readonly Code[];
  /**
   * attemptTimeoutMs is the deadline of one attempt (never past the job's
   * expiry); it also bounds the idempotency lease, hence how long a
   * redelivered job waits for a dead worker's claim; default 60_000.
   */
  readonly attemptTimeoutMs?: number;
  /** onEvent receives job and idempotency events (they are also logged). */
  readonly onEvent?: (event: QueueWorkerEvent | IdempotencyEvent) => void;
  /** connect passes further options to Connect's router (readMaxBytes...). */
  readonly connect?: Omit<
    ConnectRouterOptions,
    "interceptors" | "requestGate" | "grpc" | "grpcWeb" | "connect" | "shutdownSignal"
  >;
  /** now is the wall clock (epoch ms) expiries are checked against; default Date.now. */
  readonly now?: () => number;
}

type WorkerDefaults = Required<
  Pick<
    QueueWorkerOptions,
    "concurrency" | "maxAttempts" | "backoff" | "transientCodes" | "attemptTimeoutMs"
  >
>;

/** QUEUE_WORKER_DEFAULTS are the defaults documented on QueueWorkerOptions. */
export const QUEUE_WORKER_DEFAULTS: Readonly<WorkerDefaults> = Object.freeze({
  concurrency: 10,
  maxAttempts: 5,
  // Background work can wait: a second, doubling to a minute, rides out a
  // dependency's restart without hammering it (5 attempts span ~15 s on average).
  backoff: Object.freeze({ initialMs: 1_000, multiplier: 2, maxMs: 60_000 }),
  transientCodes: QUEUE_TRANSIENT_CODES,
  // The idempotency interceptor's maxLeaseMs: longer attempts would lose their claim anyway.
  attemptTimeoutMs: 60_000,
});

/** QueueJobRef names the job an event is about. */
export interface QueueJobRef {
  readonly jobId: string;
  /** method is `package.Service/Method`. */
  readonly method: string;
  readonly attempt: number;
  /** traceId is the enqueuer's trace. */
  readonly traceId: string | undefined;
}

/**
 * QueueWorkerEvent is what a worker reports per delivery, once the queue
 * has recorded it (so `counts()` and `deadLetters()` already show it):
 * - `job-completed`: the call succeeded (`replayed`: its stored outcome was replayed);
 * - `job-retry`: it failed transiently and runs again after `delayMs`;
 * - `job-dead-lettered`: it failed for good, or expired (not run);
 * - `job-released`: the worker closed while it ran; it goes back to the queue.
 */
export type QueueWorkerEvent =
  | ({ readonly type: "job-completed"; readonly replayed: boolean } & QueueJobRef)
  | ({
      readonly type: "job-retry";
      readonly delayMs: number;
      readonly error: QueueError;
    } & QueueJobRef)
  | ({
      readonly type: "job-dead-lettered";
      readonly reason: DeadLetterReason;
      readonly error: QueueError;
    } & QueueJobRef)
  | ({ readonly type: "job-released" } & QueueJobRef);

/** QueueWorkerCloseOptions says how long close() lets running jobs finish. */
export interface QueueWorkerCloseOptions {
  /**
   * graceMs is how long running jobs may take before they are cancelled
   * (their `ctx.signal` aborts) and put back in the queue; default: wait for
   * them (each is bounded by attemptTimeoutMs).
   */
  readonly graceMs?: number;
}

/** QueueWorker runs queued calls. */
export interface QueueWorker {
  /**
   * close stops taking jobs and resolves once the running ones have finished
   * and their outcomes are recorded. It does not close the queue. Idempotent.
   */
  close(options?: QueueWorkerCloseOptions): Promise<void>;
  /** inFlight is the number of jobs running now. */
  readonly inFlight: number;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * createQueueWorker takes jobs from `queue` and runs each through the mesh
 * server interceptor chain — observe (trace, log, metrics), deadline and call
 * scope, concurrency limit, your interceptors, idempotency, faults — and the
 * handler registered by `routes`, as a direct gRPC call would be: the job
 * becomes a synthetic gRPC request to Connect's own handler for the method,
 * with `idempotency-key`, `traceparent` and a `grpc-timeout` (the attempt
 * timeout, never past the job's expiry).
 *
 * - A redelivered job (its worker died, or a retry after a transient error)
 *   runs under the same idempotency key: a stored outcome is replayed, the
 *   handler does not run again.
 * - The call continues the enqueuer's trace: its log lines carry the
 *   enqueuer's trace_id.
 * - A job past its expiry is not run: dead-lettered as `expired`.
 * - Transient codes (QUEUE_TRANSIENT_CODES) are retried with full-jitter
 *   backoff up to maxAttempts; anything else is dead-lettered with its code
 *   and message.
 */
export function createQueueWorker(options: QueueWorkerOptions): QueueWorker {
  const opts = {
    ...QUEUE_WORKER_DEFAULTS,
    ...stripUndefined(options),
    queue: options.queue,
    routes: options.routes,
  };
  validateWorkerOptions(opts);
  const queue = opts.queue;
  const now = opts.now ?? Date.now;
  const backoff = createBackoff({ ...QUEUE_WORKER_DEFAULTS.backoff, ...options.backoff });
  const transientCodes = new Set(opts.transientCodes);
  const logger = opts.logger === false ? SILENT_LOGGER : (opts.logger ?? defaultLogger());
  const eventLogger = createEventLogger(logger);
  const emit = (e: QueueWorkerEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {
      // A listener must not change what becomes of a job.
    }
  };
  const peerAddress = `queue:${queue.name}`;
  const handlers = buildHandlers(opts, logger, eventLogger.onEvent, peerAddress);
  const running = new Set<AbortController>();
  // Events wait for the queue to record the outcome (ConsumeOptions.onSettled).
  const decided = new WeakMap<QueuedJob, QueueWorkerEvent>();
  const report = (job: QueuedJob, e: QueueWorkerEvent) => decided.set(job, e);

  async function processJob(job: QueuedJob): Promise<JobOutcome> {
    const { call } = job;
    const method = procedureName(call);
    const trace = parseTraceparent(call.traceparent);
    const ref: QueueJobRef = {
      jobId: job.id,
      method,
      attempt: job.attempt,
      traceId: trace?.traceId,
    };
    const log = logger.child({
      ...(trace === undefined ? {} : traceFields(trace)),
      "queue.name": queue.name,
      "queue.job_id": job.id,
      "queue.attempt": job.attempt,
      "grpc.method": method,
    });
    const dead = (reason: DeadLetterReason, error: QueueError): JobOutcome => {
      log.warn(
        { "queue.reason": reason, "grpc.code": codeName(error.code), "grpc.error": error.message },
        "job dead-lettered",
      );
      report(job, { type: "job-dead-lettered", reason, error, ...ref });
      return { kind: "dead", reason, error };
    };

    const startMs = now();
    if (startMs >= call.expiresAt) {
      return dead("expired", {
        code: Code.DeadlineExceeded,
        message: `job expired ${startMs - call.expiresAt} ms before attempt ${job.attempt} could start`,
      });
    }
    const handler = handlers.get(method);
    if (handler === undefined || handler.method.methodKind !== "unary") {
      return dead("failed", {
        code: Code.Unimplemented,
        message: `${method} is not a unary method served by this worker`,
      });
    }
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    running.add(controller);
    const values = createContextValues();
    values.set(peerKey, peerAddress);
    values.set(queuedJobKey, {
      queue: queue.name,
      jobId: job.id,
      attempt: job.attempt,
      enqueuedAt: call.enqueuedAt,
      expiresAt: call.expiresAt,
      replays: call.replays,
    });
    let result: Awaited<ReturnType<typeof invokeQueuedCall>>;
    try {
      result = await invokeQueuedCall(handler, call, {
        idempotencyKey: effectiveIdempotencyKey(call),
        timeoutMs: Math.min(opts.attemptTimeoutMs, call.expiresAt - startMs),
        signal: controller.signal,
        contextValues: values,
      });
    } finally {
      running.delete(controller);
    }

    if (result.error === undefined || outcomeWasNotStored(result.error)) {
      log.debug({ "idempotency.replayed": result.replayed }, "job completed");
      report(job, { type: "job-completed", replayed: result.replayed, ...ref });
      return { kind: "completed" };
    }
    const error: QueueError = { code: result.error.code, message: result.error.rawMessage };
    if (controller.signal.aborted) {
      log.info("job released: the worker is closing");
      report(job, { type: "job-released", ...ref });
      return { kind: "release" };
    }
    const decision = decideFailure({
      code: error.code,
      attempt: job.attempt,
      maxAttempts: opts.maxAttempts,
      nowMs: now(),
      expiresAt: call.expiresAt,
      transientCodes,
      backoff,
    });
    if (decision.kind === "dead") {
      return dead(decision.reason, error);
    }
    log.info(
      {
        "grpc.code": codeName(error.code),
        "grpc.error": error.message,
        "queue.retry_delay_ms": decision.delayMs,
      },
      "job will be retried",
    );
    report(job, { type: "job-retry", delayMs: decision.delayMs, error, ...ref });
    return { kind: "retry", delayMs: decision.delayMs, error };
  }

  const consumer = queue.consume(processJob, {
    concurrency: opts.concurrency,
    onSettled(job) {
      const e = decided.get(job);
      decided.delete(job);
      if (e !== undefined) emit(e);
    },
  });
  let closed: Promise<void> | undefined;

  const worker: QueueWorker = {
    close(closeOptions = {}) {
      const graceMs = closeOptions.graceMs;
      if (graceMs !== undefined && !(graceMs >= 0)) {
        return Promise.reject(new RangeError(`graceMs ${graceMs} must be >= 0`));
      }
      closed ??= (async () => {
        const timer =
          graceMs === undefined
            ? undefined
            : setTimeout(() => {
                for (const c of running) c.abort(shutdownError());
              }, graceMs);
        try {
          await consumer.close();
        } finally {
          clearTimeout(timer);
        }
      })();
      return closed;
    },
    get inFlight() {
      return running.size;
    },
    [Symbol.asyncDispose]() {
      return worker.close();
    },
  };
  return worker;
}

/**
 * buildHandlers registers the routes on a gRPC-only Connect router whose
 * interceptors are the mesh server chain, built from the same parts as
 * createMeshServer's, and indexes its handlers by `package.Service/Method`.
 */
function buildHandlers(
  opts: QueueWorkerOptions & WorkerDefaults,
  logger: Logger,
  logEvent: (e: IdempotencyEvent) => void,
  peerAddress: string,
): Map<string, UniversalHandler> {
  const _idempotency = opts.idempotency;
  const router = createConnectRouter({
    ...opts.connect,
    grpc: true,
    grpcWeb: false,
    connect: false,
    interceptors: createServerInterceptors(opts, logger, (e) => {
      logEvent(e);
      opts.onEvent?.(e);
    }),
    requestGate: serverCallGate(peerAddress),
  });
  opts.routes(router);
  return new Map(router.handlers.map((h) => [`${h.service.typeName}/${h.method.name}`, h]));
}

/**
 * outcomeWasNotStored recognises the idempotency interceptor's answer to a
 * key whose call completed but whose outcome was too large to store: the call
 * ran, so the job is done.
 */
function outcomeWasNotStored(error: ConnectError): boolean {
  return (
    error.code === Code.FailedPrecondition &&
    error
      .findDetails(ErrorInfoSchema)
      .some(
        (d) =>
          d.reason === "IDEMPOTENCY_OUTCOME_NOT_STORED" && d.domain === IDEMPOTENCY_ERROR_DOMAIN,
      )
  );
}

function shutdownError(): Error {
  return new Error("queue worker is shutting down");
}

function validateWorkerOptions(opts: QueueWorkerOptions & WorkerDefaults): void {
  if (typeof opts.queue?.consume !== "function") {
    throw new TypeError("createQueueWorker: queue must be a Queue");
  }
  if (typeof opts.routes !== "function") {
    throw new TypeError("createQueueWorker: routes must be a function (router) => void");
  }
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    throw new RangeError(`concurrency ${opts.concurrency} must be an integer >= 1`);
  }
  if (!Number.isInteger(opts.maxAttempts) || opts.maxAttempts < 1) {
    throw new RangeError(`maxAttempts ${opts.maxAttempts} must be an integer >= 1`);
  }
  if (!(opts.attemptTimeoutMs > 0) || !Number.isFinite(opts.attemptTimeoutMs)) {
    throw new RangeError(`attemptTimeoutMs ${opts.attemptTimeoutMs} must be a finite number > 0`);
  }
  for (const c of opts.transientCodes) {
    if (Code[c] === undefined) throw new RangeError(`transientCodes: ${c} is not a Code`);
  }
}
