import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { type Clock, systemClock } from "../clock.js";
import {
  type ConsumeOptions,
  type Consumer,
  type DeadLetter,
  type DeadLettersOptions,
  type JobOutcome,
  type JobProcessor,
  type Queue,
  type QueueCounts,
  type QueuedJob,
  QueueJobNotFoundError,
  type ReplayOptions,
  renewedExpiry,
  validateConcurrency,
} from "./queue.js";
import type { QueuedCall } from "./queued-call.js";

/** MemoryQueueOptions configures createMemoryQueue. */
export interface MemoryQueueOptions {
  /** name of the queue; default `default`. */
  readonly name?: string;
  /** clock times retry delays; default the system clock. */
  readonly clock?: Clock;
  /** now is the wall clock (epoch ms) used for dead-letter times and replay expiries; default Date.now. */
  readonly now?: () => number;
}

// A processor that throws broke its contract; its job is tried again later
// rather than lost or spun on.
const PROCESSOR_THROW_RETRY_MS = 1_000;

type State = "waiting" | "active" | "delayed" | "dead";

interface Entry {
  readonly id: string;
  call: QueuedCall;
  state: State;
  /** attempt is the number of the next (or running) attempt. */
  attempt: number;
  timer?: unknown;
  dead?: DeadLetter;
}

interface ConsumerState {
  readonly processor: JobProcessor;
  readonly concurrency: number;
  readonly onSettled: ((job: QueuedJob, outcome: JobOutcome) => void) | undefined;
  active: number;
  closing: boolean;
  idle?: () => void;
}

/**
 * createMemoryQueue is a Queue in this process's memory: the default for
 * tests and the demo. It keeps the Redis backend's semantics (retries with a
 * delay, a dead-letter list, replay, counts) but not its durability: jobs die
 * with the process, and nothing redelivers a job whose processor hangs.
 */
export function createMemoryQueue(options: MemoryQueueOptions = {}): Queue {
  const name = options.name ?? "default";
  const clock = options.clock ?? systemClock;
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  // FIFO of waiting ids; `head` avoids O(n) shifts.
  let waiting: string[] = [];
  let head = 0;
  const dead = new Map<string, Entry>();
  const consumers = new Set<ConsumerState>();
  let completed = 0;
  let active = 0;
  let delayed = 0;
  let closed = false;

  function makeWaiting(entry: Entry): void {
    entry.state = "waiting";
    waiting.push(entry.id);
    pump();
  }

  function takeWaiting(): Entry | undefined {
    while (head < waiting.length) {
      const id = waiting[head++] as string;
      if (head > 1024 && head * 2 > waiting.length) {
        waiting = waiting.slice(head);
        head = 0;
      }
      const entry = entries.get(id);
      if (entry?.state === "waiting") return entry;
    }
    return undefined;
  }

  function pump(): void {
    for (const c of consumers) {
      while (!c.closing && c.active < c.concurrency) {
        const entry = takeWaiting();
        if (entry === undefined) return;
        run(c, entry);
      }
    }
  }

  function run(c: ConsumerState, entry: Entry): void {
    entry.state = "active";
    c.active++;
    active++;
    const job: QueuedJob = { id: entry.id, call: entry.call, attempt: entry.attempt };
    let outcome: Promise<JobOutcome>;
    try {
      outcome = c.processor(job);
    } catch (e) {
      outcome = Promise.reject(e);
    }
    outcome
      .catch(
        (e: unknown): JobOutcome => ({
          kind: "retry",
          delayMs: PROCESSOR_THROW_RETRY_MS,
          error: { code: Code.Internal, message: e instanceof Error ? e.message : String(e) },
        }),
      )
      .then((o) => {
        c.active--;
        active--;
        apply(entry, o);
        c.onSettled?.(job, o);
        if (c.closing && c.active === 0) c.idle?.();
        pump();
      });
  }

  function apply(entry: Entry, outcome: JobOutcome): void {
    switch (outcome.kind) {
      case "completed":
        entries.delete(entry.id);
        completed++;
        return;
      case "release":
        makeWaiting(entry);
        return;
      case "retry":
        entry.attempt++;
        if (closed) {
          makeWaiting(entry);
          return;
        }
        entry.state = "delayed";
        delayed++;
        entry.timer = clock.setTimeout(() => {
          delayed--;
          entry.timer = undefined;
          makeWaiting(entry);
        }, outcome.delayMs);
        return;
      case "dead":
        entry.state = "dead";
        entry.dead = {
          jobId: entry.id,
          call: entry.call,
          reason: outcome.reason,
          error: outcome.error,
          attempts: entry.attempt,
          deadAt: now(),
        };
        dead.set(entry.id, entry);
        return;
    }
  }

  return {
    name,
    async enqueue(call) {
      if (closed) throw new Error(`queue ${JSON.stringify(name)} is closed`);
      const entry: Entry = { id: randomUUID(), call, state: "waiting", attempt: 1 };
      entries.set(entry.id, entry);
      makeWaiting(entry);
      return entry.id;
    },
    consume(processor: JobProcessor, consumeOptions: ConsumeOptions): Consumer {
      validateConcurrency(consumeOptions.concurrency);
      const c: ConsumerState = {
        processor,
        concurrency: consumeOptions.concurrency,
        onSettled: consumeOptions.onSettled,
        active: 0,
        closing: false,
      };
      consumers.add(c);
      // Start on a later tick, as a Redis consumer would: enqueue never runs a job inline.
      queueMicrotask(pump);
      let closing: Promise<void> | undefined;
      return {
        close() {
          closing ??= closeConsumer(c);
          return closing;
        },
      };
    },
    async counts(): Promise<QueueCounts> {
      return {
        waiting: entries.size - active - delayed - dead.size,
        active,
        delayed,
        dead: dead.size,
        completed,
      };
    },
    async deadLetters(page: DeadLettersOptions = {}) {
      const offset = page.offset ?? 0;
      const limit = page.limit ?? 100;
      return [...dead.values()].slice(offset, offset + limit).map((e) => e.dead as DeadLetter);
    },
    async replay(jobId: string, replayOptions: ReplayOptions = {}) {
      const entry = dead.get(jobId);
      if (entry === undefined) {
        throw new QueueJobNotFoundError(
          `job ${JSON.stringify(jobId)} is not in the dead-letter list`,
        );
      }
      const expiresAt = renewedExpiry(entry.call, now(), replayOptions);
      dead.delete(jobId);
      entry.dead = undefined;
      entry.call = { ...entry.call, replays: entry.call.replays + 1, expiresAt };
      entry.attempt = 1;
      makeWaiting(entry);
    },
    async close() {
      closed = true;
      await Promise.all([...consumers].map((c) => closeConsumer(c)));
      for (const e of entries.values()) {
        if (e.timer !== undefined) {
          clock.clearTimeout(e.timer);
          e.timer = undefined;
          delayed--;
          e.state = "waiting";
        }
      }
    },
  };

  function closeConsumer(c: ConsumerState): Promise<void> {
    c.closing = true;
    if (c.active === 0) {
      consumers.delete(c);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const prev = c.idle;
      c.idle = () => {
        prev?.();
        consumers.delete(c);
        resolve();
      };
    });
  }
}
