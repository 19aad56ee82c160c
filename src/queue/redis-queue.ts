import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import type { Job, RedisOptions } from "bullmq";
import { lazyModule } from "../lazy-module.js";
import { codeName } from "../observability/grpc-fields.js";
import type { RedisConnectionOptions } from "../redis-client.js";
import { stripUndefined } from "../strip-undefined.js";
import {
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  type DeadLetterReason,
  type DeadLettersOptions,
  type JobOutcome,
  type JobProcessor,
  type Queue,
  type QueueCounts,
  type QueuedJob,
  type QueueError,
  QueueJobNotFoundError,
  type ReplayOptions,
  renewedExpiry,
  validateConcurrency,
} from "./queue.js";
import {
  decodeQueuedCall,
  encodeQueuedCall,
  type QueuedCall,
  type QueuedCallJson,
} from "./queued-call.js";

/** RedisQueueOptions configures createRedisQueue. */
export interface RedisQueueOptions {
  /** name of the queue; no `:`. Producers and workers of one queue use the same name and prefix. */
  readonly name: string;
  /**
   * connection is a `redis://` URL or ioredis options; default 127.0.0.1:6379.
   * BullMQ opens its own connections from it (one for the queue, two per consumer).
   */
  readonly connection?: string | RedisConnectionOptions;
  /** prefix starts every Redis key of the queue; default `connect-mesh`. */
  readonly prefix?: string;
  /**
   * lockDurationMs is the visibility timeout: a running job's lock, renewed
   * every half of it by a live worker. When a worker dies, its jobs are
   * delivered again once their lock has expired and a stalled check has run
   * (at most lockDurationMs + stalledIntervalMs). Default 30_000.
   */
  readonly lockDurationMs?: number;
  /** stalledIntervalMs is how often consumers look for jobs whose lock expired; default 30_000. */
  readonly stalledIntervalMs?: number;
  /**
   * maxStalledCount is how often one job may lose its worker before it is
   * dead-lettered as `stalled` (a job that crashes every worker it touches); default 3.
   */
  readonly maxStalledCount?: number;
  /** keepDeadLetters caps the dead-letter list (oldest dropped first); default unbounded. */
  readonly keepDeadLetters?: number;
  /** now is the wall clock (epoch ms) for replay expiries; default Date.now. */
  readonly now?: () => number;
  /** onError receives connection errors of the BullMQ queue and workers (they reconnect by themselves); default ignore. */
  readonly onError?: (error: Error) => void;
}

type RedisQueueDefaults = Required<
  Pick<
    RedisQueueOptions,
    "connection" | "prefix" | "lockDurationMs" | "stalledIntervalMs" | "maxStalledCount"
  >
>;

/** REDIS_QUEUE_DEFAULTS are the defaults documented on RedisQueueOptions. */
export const REDIS_QUEUE_DEFAULTS: Readonly<RedisQueueDefaults> = Object.freeze({
  connection: Object.freeze({ host: "127.0.0.1", port: 6379 }),
  prefix: "connect-mesh",
  // BullMQ's own defaults: short enough that a crashed worker's jobs come
  // back within a minute, long enough that a busy event loop renewing late
  // does not cause spurious redeliveries.
  lockDurationMs: 30_000,
  stalledIntervalMs: 30_000,
  maxStalledCount: 3,
});

// The worker, not BullMQ, decides between retry and dead-letter (the same
// policy for both backends), so BullMQ's attempt limit must never be reached.
const UNLIMITED_ATTEMPTS = 2 ** 31 - 1;
const BACKOFF_TYPE = "connect-mesh";
// A processor that throws broke its contract; BullMQ retries the job after this.
const PROCESSOR_THROW_RETRY_MS = 1_000;
// BullMQ's "completed" metric keeps one point per minute; a week is plenty
// for the dashboard, and the total is kept apart from the points.
const METRICS_DATA_POINTS = 60 * 24 * 7;
const RETRY_DELAY = Symbol("connect-mesh retry delay");

type RetrySignal = Error & { [RETRY_DELAY]?: number };

interface Settling {
  readonly job: QueuedJob;
  readonly outcome: JobOutcome;
}

const loadBullmq = lazyModule<typeof import("bullmq")>("bullmq");

/**
 * createRedisQueue is a durable Queue in Redis, built on BullMQ.
 *
 * Why BullMQ rather than Redis Streams: a queued call needs per-job delayed
 * retries, a visibility timeout that a live worker keeps extending while a
 * long handler runs, recovery of jobs whose worker died, a dead-letter set
 * that can be listed and replayed, and counts per state. BullMQ implements all
 * of these atomically in Lua (delayed zset, lock renewal, stalled-job checker,
 * failed set, `job.retry()`, `getJobCounts()`), and is the most used Node.js
 * queue on Redis. With Streams we would get consumer groups and `XAUTOCLAIM`
 * for redelivery, but would have to build delays (a zset plus a mover), lock
 * extension, the dead-letter list, replay and counts ourselves — the hard,
 * crash-sensitive parts. The price: BullMQ's key layout and three connections
 * per consumer (a blocking one among them).
 *
 * Mapping: a job is a QueuedCall as JSON (`QueuedCallJson`, request bytes in
 * base64), named `package.Service/Method`; the worker's `retry` outcome
 * becomes a BullMQ retry with the worker's delay (a custom backoff strategy),
 * `dead` an UnrecoverableError whose failedReason reads
 * `<reason> (<Code>): <message>`, and the failed set is the dead-letter list.
 * Completed jobs are removed; the completed count comes from BullMQ metrics.
 */
export function createRedisQueue(options: RedisQueueOptions): Queue {
  const { Queue: BullQueue, Worker: BullWorker, UnrecoverableError, WaitingError } = loadBullmq();
  const opts = { ...REDIS_QUEUE_DEFAULTS, ...stripUndefined(options), name: options.name };
  validateRedisQueueOptions(opts);
  const connection: RedisOptions =
    typeof opts.connection === "string" ? { url: opts.connection } : opts.connection;
  const now = opts.now ?? Date.now;
  const onError = opts.onError ?? (() => {});
  const queue = new BullQueue<QueuedCallJson>(opts.name, { connection, prefix: opts.prefix });
  queue.on("error", onError);
  const consumers = new Set<Consumer>();
  let closed: Promise<void> | undefined;

  async function processJob(
    processor: JobProcessor,
    pending: Map<string, Settling>,
    onSettled: ConsumeOptions["onSettled"],
    job: Job<QueuedCallJson>,
    token: string | undefined,
  ): Promise<void> {
    let call: QueuedCall;
    try {
      call = decodeQueuedCall(job.data);
    } catch (e) {
      throw new UnrecoverableError(
        formatFailedReason("failed", {
          code: Code.InvalidArgument,
          message: e instanceof Error ? e.message : String(e),
        }),
      );
    }
    const queued: QueuedJob = { id: job.id as string, call, attempt: job.attemptsMade + 1 };
    let outcome: JobOutcome;
    try {
      outcome = await processor(queued);
    } catch (e) {
      outcome = {
        kind: "retry",
        delayMs: PROCESSOR_THROW_RETRY_MS,
        error: { code: Code.Internal, message: e instanceof Error ? e.message : String(e) },
      };
    }
    // BullMQ records the outcome after this returns; its worker events say when.
    pending.set(queued.id, { job: queued, outcome });
    switch (outcome.kind) {
      case "completed":
        return;
      case "retry": {
        const err: RetrySignal = new Error(
          `retry (${codeName(outcome.error.code)}): ${outcome.error.message}`,
        );
        err[RETRY_DELAY] = outcome.delayMs;
        throw err;
      }
      case "dead":
        throw new UnrecoverableError(formatFailedReason(outcome.reason, outcome.error));
      case "release":
        pending.delete(queued.id);
        await job.moveToWait(token);
        onSettled?.(queued, outcome);
        throw new WaitingError();
    }
  }

  function toDeadLetter(job: Job<QueuedCallJson>): DeadLetter | undefined {
    let call: QueuedCall;
    try {
      call = decodeQueuedCall(job.data);
    } catch {
      // Not ours (another producer on the same queue): not listed.
      return undefined;
    }
    const { reason, error } = parseFailedReason(job.failedReason ?? "");
    return {
      jobId: job.id as string,
      call,
      reason,
      error,
      attempts: job.attemptsMade,
      deadAt: job.finishedOn ?? 0,
    };
  }

  return {
    name: opts.name,
    async enqueue(call) {
      const job = await queue.add(`${call.service}/${call.method}`, encodeQueuedCall(call), {
        jobId: randomUUID(),
        attempts: UNLIMITED_ATTEMPTS,
        backoff: { type: BACKOFF_TYPE },
        removeOnComplete: true,
        removeOnFail: opts.keepDeadLetters === undefined ? false : { count: opts.keepDeadLetters },
      });
      return job.id as string;
    },
    consume(processor: JobProcessor, consumeOptions: ConsumeOptions): Consumer {
      validateConcurrency(consumeOptions.concurrency);
      if (closed !== undefined) throw new Error(`queue ${JSON.stringify(opts.name)} is closed`);
      const pending = new Map<string, Settling>();
      const settle = (jobId: string | undefined) => {
        const s = jobId === undefined ? undefined : pending.get(jobId);
        if (s === undefined) return;
        pending.delete(jobId as string);
        consumeOptions.onSettled?.(s.job, s.outcome);
      };
      const worker = new BullWorker<QueuedCallJson>(
        opts.name,
        (job, token) => processJob(processor, pending, consumeOptions.onSettled, job, token),
        {
          connection,
          prefix: opts.prefix,
          concurrency: consumeOptions.concurrency,
          lockDuration: opts.lockDurationMs,
          stalledInterval: opts.stalledIntervalMs,
          maxStalledCount: opts.maxStalledCount,
          metrics: { maxDataPoints: METRICS_DATA_POINTS },
          settings: {
            backoffStrategy: (_attemptsMade, _type, err) =>
              (err as RetrySignal | undefined)?.[RETRY_DELAY] ?? PROCESSOR_THROW_RETRY_MS,
          },
        },
      );
      worker.on("error", onError);
      worker.on("completed", (job) => settle(job.id));
      worker.on("failed", (job) => settle(job?.id));
      let closing: Promise<void> | undefined;
      const consumer: Consumer = {
        close() {
          closing ??= worker.close().finally(() => consumers.delete(consumer));
          return closing;
        },
      };
      consumers.add(consumer);
      return consumer;
    },
    async counts(): Promise<QueueCounts> {
      const [c, metrics] = await Promise.all([
        queue.getJobCounts("waiting", "prioritized", "active", "delayed", "failed"),
        queue.getMetrics("completed", 0, 0),
      ]);
      return {
        waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
        active: c.active ?? 0,
        delayed: c.delayed ?? 0,
        dead: c.failed ?? 0,
        completed: metrics.meta.count,
      };
    },
    async deadLetters(page: DeadLettersOptions = {}) {
      const offset = page.offset ?? 0;
      const limit = page.limit ?? 100;
      if (limit <= 0) return [];
      const jobs = await queue.getJobs(["failed"], offset, offset + limit - 1, true);
      return jobs.flatMap((j) => toDeadLetter(j) ?? []);
    },
    async replay(jobId: string, replayOptions: ReplayOptions = {}) {
      const job = await queue.getJob(jobId);
      if (job === undefined || !(await job.isFailed())) {
        throw new QueueJobNotFoundError(
          `job ${JSON.stringify(jobId)} is not in the dead-letter list`,
        );
      }
      const call = decodeQueuedCall(job.data);
      const expiresAt = renewedExpiry(call, now(), replayOptions);
      await job.updateData(encodeQueuedCall({ ...call, replays: call.replays + 1, expiresAt }));
      await job.retry("failed", { resetAttemptsMade: true, resetAttemptsStarted: true });
    },
    close() {
      closed ??= (async () => {
        await Promise.all([...consumers].map((c) => c.close()));
        await queue.close();
      })();
      return closed;
    },
  };
}

const FAILED_REASON = /^(failed|exhausted|expired|stalled) \(([A-Za-z]+)\): ([\s\S]*)$/;

/** formatFailedReason renders a dead-letter reason as BullMQ's failedReason. @private */
export function formatFailedReason(reason: DeadLetterReason, error: QueueError): string {
  return `${reason} (${codeName(error.code)}): ${error.message}`;
}

/**
 * parseFailedReason reads formatFailedReason's text back. Anything else was
 * written by BullMQ itself: a job that stalled too often (or, were another
 * producer's job listed, its own error): `stalled`, ABORTED.
 * @private
 */
export function parseFailedReason(text: string): { reason: DeadLetterReason; error: QueueError } {
  const m = FAILED_REASON.exec(text);
  const code = m === null ? undefined : (Code[m[2] as keyof typeof Code] as Code | undefined);
  if (m === null || code === undefined) {
    return { reason: "stalled", error: { code: Code.Aborted, message: text } };
  }
  return { reason: m[1] as DeadLetterReason, error: { code, message: m[3] as string } };
}

function validateRedisQueueOptions(opts: RedisQueueOptions & RedisQueueDefaults): void {
  if (typeof opts.name !== "string" || opts.name === "" || opts.name.includes(":")) {
    throw new TypeError(
      `queue name ${JSON.stringify(opts.name)} must be a non-empty string without ":"`,
    );
  }
  for (const [name, v] of [
    ["lockDurationMs", opts.lockDurationMs],
    ["stalledIntervalMs", opts.stalledIntervalMs],
  ] as const) {
    if (!(v > 0) || !Number.isFinite(v))
      throw new RangeError(`${name} ${v} must be a finite number > 0`);
  }
  if (!Number.isInteger(opts.maxStalledCount) || opts.maxStalledCount < 0) {
    throw new RangeError(`maxStalledCount ${opts.maxStalledCount} must be an integer >= 0`);
  }
  if (
    opts.keepDeadLetters !== undefined &&
    (!Number.isInteger(opts.keepDeadLetters) || opts.keepDeadLetters < 1)
  ) {
    throw new RangeError(`keepDeadLetters ${opts.keepDeadLetters} must be an integer >= 1`);
  }
}
