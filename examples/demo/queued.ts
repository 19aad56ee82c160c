// Queued calls through a worker: a few CreateOrders are enqueued (a queued
// client on a memory queue) instead of made, and a queue worker in this
// process runs them. The worker's handler makes the real CreateOrder through
// the same mesh transport, under the job's idempotency key, so a queued call
// gets the mesh's retries, breakers and de-duplication too, and its trace
// goes from the enqueue through the worker to a replica.
import { type Client, createClient } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  createMemoryQueue,
  createQueuedClient,
  createQueueWorker,
  type MeshTransport,
} from "../../src/index.js";
import { OrderService } from "../order-service.js";

/** QueuedCallsRun is the queued part of the demo while it runs. */
export interface QueuedCallsRun {
  /** description says what runs, for the demo's header. */
  readonly description: string;
  /** stop stops enqueuing, lets the worker finish what is queued (up to drainMs), and stops it. */
  stop(drainMs?: number): Promise<void>;
  /** summary lines for the end of the demo. */
  summary(): string[];
  /** ok is false when some queued call did not complete. */
  ok(): boolean;
}

/** QueuedCallsOptions are what the queued part needs from the demo. */
export interface QueuedCallsOptions {
  readonly transport: MeshTransport;
  /** logger is the worker's: its call lines continue the enqueuers' traces. */
  readonly logger: Logger;
  /** everyMs is the time between two enqueued calls. */
  readonly everyMs?: number;
}

/** startQueuedCalls starts enqueuing CreateOrders every `everyMs` and a worker running them. */
export function startQueuedCalls(options: QueuedCallsOptions): QueuedCallsRun {
  const everyMs = options.everyMs ?? 500;
  const queue = createMemoryQueue();
  const orders: Client<typeof OrderService> = createClient(OrderService, options.transport);
  let enqueued = 0;
  let enqueueFailed = 0;
  let completed = 0;
  let replayed = 0;
  let retried = 0;
  let dead = 0;
  const worker = createQueueWorker({
    queue,
    routes: (router) =>
      router.service(OrderService, {
        // The job runs here; the order is made by a replica, through the mesh,
        // with the job's key: a redelivered job cannot create a second order.
        async createOrder(req, ctx) {
          const key = ctx.requestHeader.get("idempotency-key");
          return orders.createOrder(req, {
            headers: key === null ? {} : { "idempotency-key": key },
          });
        },
      }),
    concurrency: 4,
    attemptTimeoutMs: 10_000,
    backoff: { initialMs: 200, multiplier: 2, maxMs: 2_000 },
    logger: options.logger,
    onEvent: (e) => {
      if (e.type === "job-completed") {
        completed++;
        if (e.replayed) replayed++;
      } else if (e.type === "job-retry") {
        retried++;
      } else if (e.type === "job-dead-lettered") {
        dead++;
      }
    },
  });
  const queued = createQueuedClient(OrderService, { queue });
  let n = 0;
  const timer = setInterval(() => {
    const i = n++;
    queued
      .createOrder(
        {
          customerId: `queued-${i % 10}`,
          items: [{ sku: `sku-q${i % 5}`, quantity: 1, unitPriceCents: 990n }],
        },
        { timeoutMs: 60_000 },
      )
      .then(
        () => enqueued++,
        () => enqueueFailed++,
      );
  }, everyMs);

  let stopping: Promise<void> | undefined;
  const drain = async (drainMs: number) => {
    clearInterval(timer);
    const until = Date.now() + drainMs;
    for (;;) {
      const c = await queue.counts();
      if (c.waiting + c.active + c.delayed === 0 || Date.now() >= until) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await worker.close({ graceMs: 1_000 });
    await queue.close();
  };

  return {
    description: `a CreateOrder enqueued every ${everyMs} ms (memory queue); a worker with 4 slots makes it through the mesh under the job's idempotency key`,
    stop(drainMs = 10_000) {
      stopping ??= drain(drainMs);
      return stopping;
    },
    summary() {
      return [
        `${enqueued} CreateOrders enqueued, ${completed} completed by the worker through the mesh${replayed > 0 ? ` (${replayed} replayed)` : ""}, ${retried} job retries, ${dead} dead-lettered${enqueueFailed > 0 ? `, ${enqueueFailed} failed to enqueue` : ""}`,
      ];
    },
    ok() {
      return enqueueFailed === 0 && dead === 0 && completed === enqueued;
    },
  };
}
