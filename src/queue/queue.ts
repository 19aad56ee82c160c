import type { Code } from "@connectrpc/connect";
import type { QueuedCall } from "./queued-call.js";

/**
 * QueuedJob is one delivery of a queued call to a worker.
 */
export interface QueuedJob {
  /** id is the job id `enqueue` resolved with. */
  readonly id: string;
  readonly call: QueuedCall;
  /**
   * attempt is 1 for the first run and grows by one with every retry the
   * worker asked for. A redelivery after a worker died mid-job keeps the
   * attempt number: the job did not fail, its worker did.
   */
  readonly attempt: number;
}

/** QueueError is the last error of a job: its gRPC code and message. */
export interface QueueError {
  readonly code: Code;
  readonly message: string;
}

/**
 * DeadLetterReason says why a job left the queue without succeeding:
 * - `failed`: a permanent error (INVALID_ARGUMENT, NOT_FOUND, an unknown method...);
 * - `exhausted`: transient errors until the maximum attempts were used up;
 * - `expired`: its expiry passed before it could run (it was not run, or not again);
 * - `stalled`: its workers died too often while running it (Redis backend).
 */
export type DeadLetterReason = "failed" | "exhausted" | "expired" | "stalled";

/** DeadLetter is a job in the dead-letter list, to inspect and `replay`. */
export interface DeadLetter {
  readonly jobId: string;
  readonly call: QueuedCall;
  readonly reason: DeadLetterReason;
  readonly error: QueueError;
  /** attempts is how many attempts ran (or were due, for an expired job). */
  readonly attempts: number;
  /** deadAt is when the job was dead-lettered (epoch ms). */
  readonly deadAt: number;
}

/**
 * JobOutcome is what the worker decided about one delivery; the queue applies it:
 * - `completed`: the call succeeded (or its outcome was replayed): remove it;
 * - `retry`: run it again after `delayMs`, as attempt + 1;
 * - `dead`: move it to the dead-letter list;
 * - `release`: put it back unchanged for another worker (the worker is closing).
 */
export type JobOutcome =
  | { readonly kind: "completed" }
  | { readonly kind: "retry"; readonly delayMs: number; readonly error: QueueError }
  | { readonly kind: "dead"; readonly reason: DeadLetterReason; readonly error: QueueError }
  | { readonly kind: "release" };

/**
 * JobProcessor runs one delivery and says what became of it. It should not
 * throw; a queue treats a throw as a `retry` after a short delay.
 */
export type JobProcessor = (job: QueuedJob) => Promise<JobOutcome>;

/** ConsumeOptions configures one consumer. */
export interface ConsumeOptions {
  /** concurrency is how many jobs run at once in this consumer; >= 1. */
  readonly concurrency: number;
  /**
   * onSettled is called once the queue has recorded a delivery's outcome
   * (the job is gone, delayed, dead-lettered or back in waiting), so that
   * what it reports is already visible in `counts()` and `deadLetters()`.
   * Not called when recording failed (the job is then delivered again).
   */
  readonly onSettled?: (job: QueuedJob, outcome: JobOutcome) => void;
}

/** Consumer is a running consumer of a queue. */
export interface Consumer {
  /**
   * close stops taking jobs and resolves once the jobs it took have been
   * processed and their outcomes applied. Idempotent.
   */
  close(): Promise<void>;
}

/** QueueCounts are the numbers of jobs in each state, for demos and metrics. */
export interface QueueCounts {
  /** waiting jobs are ready to run. */
  readonly waiting: number;
  /** active jobs are running in a worker. */
  readonly active: number;
  /** delayed jobs wait for their retry backoff. */
  readonly delayed: number;
  /** dead jobs are in the dead-letter list (BullMQ's "failed" set). */
  readonly dead: number;
  /** completed counts jobs that succeeded since the queue was created. */
  readonly completed: number;
}

/** ReplayOptions configures Queue.replay. */
export interface ReplayOptions {
  /**
   * ttlMs is the replayed job's new time to live from now; default the
   * original one (expiresAt - enqueuedAt), so an expired job can run again.
   */
  readonly ttlMs?: number;
}

/** DeadLettersOptions pages through the dead-letter list, oldest first. */
export interface DeadLettersOptions {
  /** offset skips that many entries; default 0. */
  readonly offset?: number;
  /** limit returns at most that many; default 100. */
  readonly limit?: number;
}

/**
 * Queue is a durable queue of calls, the one interface both backends
 * implement: `createMemoryQueue()` (one process: tests and demos) and
 * `createRedisQueue()` (BullMQ: many producers and workers, survives crashes).
 *
 * Producers `enqueue`, a worker `consume`s; the worker decides what became of
 * each delivery (JobOutcome) and the queue applies it: retries with a delay,
 * the dead-letter list, redelivery of jobs whose worker died.
 */
export interface Queue {
  /** name of the queue (the Redis key namespace for the Redis backend). */
  readonly name: string;
  /** enqueue stores `call` and resolves with its job id once the queue has durably accepted it. */
  enqueue(call: QueuedCall): Promise<string>;
  /** consume starts delivering jobs to `processor`. */
  consume(processor: JobProcessor, options: ConsumeOptions): Consumer;
  /** counts returns the number of jobs in each state. */
  counts(): Promise<QueueCounts>;
  /** deadLetters lists the dead-letter list, oldest first. */
  deadLetters(options?: DeadLettersOptions): Promise<DeadLetter[]>;
  /**
   * replay moves a dead-lettered job back to waiting, as attempt 1 under a
   * new idempotency key (see effectiveIdempotencyKey) and a renewed expiry.
   * It rejects with QueueJobNotFoundError when `jobId` is not dead-lettered.
   */
  replay(jobId: string, options?: ReplayOptions): Promise<void>;
  /** close stops the consumers (as their close does) and releases connections. Idempotent. */
  close(): Promise<void>;
}

/** QueueJobNotFoundError is a job id the operation cannot find in the state it needs. */
export class QueueJobNotFoundError extends Error {
  override readonly name = "QueueJobNotFoundError";
}

/** validateConcurrency checks ConsumeOptions.concurrency. @private */
export function validateConcurrency(concurrency: number): void {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`concurrency ${concurrency} must be an integer >= 1`);
  }
}

/** renewedExpiry is a replayed call's new expiry. @private */
export function renewedExpiry(call: QueuedCall, nowMs: number, options: ReplayOptions): number {
  const ttlMs = options.ttlMs ?? Math.max(0, call.expiresAt - call.enqueuedAt);
  if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
    throw new RangeError(`ttlMs ${ttlMs} must be a finite number > 0`);
  }
  return nowMs + ttlMs;
}
