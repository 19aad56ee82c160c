// The behaviour every Queue backend must show, end to end through a worker:
// test/queue/memory-queue.test.ts and redis-queue.test.ts run it.

import { Code, createContextValues } from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { traceContextKey } from "../../src/observability/context-keys.js";
import { newRootContext, parseTraceparent } from "../../src/observability/trace-context.js";
import type { Queue } from "../../src/queue/queue.js";
import {
  createQueueWorker,
  type QueueWorker,
  type QueueWorkerEvent,
  type QueueWorkerOptions,
} from "../../src/queue/queue-worker.js";
import { createQueuedClient } from "../../src/queue/queued-client.js";
import { captureLogs, type LogCapture } from "../observability/log-capture.js";
import { waitFor } from "../support/wait-for.js";
import { createOrderJobs, type OrderJobs, OrderService } from "./order-jobs.js";

/** QueueFactory makes a fresh, empty queue; the suite closes it. */
export type QueueFactory = () => Queue | Promise<Queue>;

const FAST_RETRIES = { maxAttempts: 4, backoff: { initialMs: 20, maxMs: 50 } } as const;

export function queueContract(backend: string, makeQueue: QueueFactory): void {
  describe(`queue (${backend} backend)`, () => {
    let queue: Queue;
    let jobs: OrderJobs;
    let logs: LogCapture;
    let events: QueueWorkerEvent[];
    let worker: QueueWorker | undefined;

    const startWorker = (extra: Partial<QueueWorkerOptions> = {}) => {
      worker = createQueueWorker({
        queue,
        routes: jobs.routes,
        concurrency: 4,
        logger: logs.logger,
        ...FAST_RETRIES,
        onEvent: (e) => {
          if ("jobId" in e) events.push(e);
        },
        ...extra,
      });
      return worker;
    };
    const eventsOf = (jobId: string) => events.filter((e) => e.jobId === jobId);
    const finished = (jobId: string) =>
      eventsOf(jobId).some((e) => e.type === "job-completed" || e.type === "job-dead-lettered");

    beforeEach(async () => {
      queue = await makeQueue();
      jobs = createOrderJobs();
      logs = captureLogs("debug");
      events = [];
    });
    afterEach(async () => {
      await worker?.close();
      worker = undefined;
      await queue.close();
    });

    it("queue: an enqueued call is processed once", async () => {
      const orders = createQueuedClient(OrderService, { queue });
      const receipt = await orders.createOrder({ customerId: "once" });
      expect(receipt.jobId).toMatch(/\S/);
      expect(receipt.idempotencyKey).toMatch(/^[0-9a-f-]{36}$/);
      startWorker();
      await waitFor(() => finished(receipt.jobId));
      expect(jobs.effects.get("once")).toBe(1);
      expect(eventsOf(receipt.jobId).map((e) => e.type)).toEqual(["job-completed"]);
      expect(await queue.counts()).toMatchObject({
        waiting: 0,
        active: 0,
        delayed: 0,
        dead: 0,
        completed: 1,
      });
    });

    it("queue: a handler failing twice with UNAVAILABLE is retried and then succeeds", async () => {
      jobs.failures.set("flaky", [Code.Unavailable, Code.Unavailable]);
      const orders = createQueuedClient(OrderService, { queue });
      startWorker();
      const { jobId } = await orders.createOrder({ customerId: "flaky" });
      await waitFor(() => finished(jobId));
      expect(eventsOf(jobId).map((e) => e.type)).toEqual([
        "job-retry",
        "job-retry",
        "job-completed",
      ]);
      expect(jobs.attempts.get("flaky")).toEqual([1, 2, 3]);
      expect(jobs.effects.get("flaky")).toBe(1);
      const retry = eventsOf(jobId)[0];
      expect(retry).toMatchObject({ type: "job-retry", error: { code: Code.Unavailable } });
    });

    it("queue: retries stop at maxAttempts and the job is dead-lettered as exhausted", async () => {
      jobs.failures.set("down", Array(10).fill(Code.Unavailable));
      const orders = createQueuedClient(OrderService, { queue });
      startWorker();
      const { jobId } = await orders.createOrder({ customerId: "down" });
      await waitFor(() => finished(jobId));
      expect(jobs.attempts.get("down")).toEqual([1, 2, 3, 4]);
      const [dead] = await queue.deadLetters();
      expect(dead).toMatchObject({
        jobId,
        reason: "exhausted",
        error: { code: Code.Unavailable, message: "scripted failure for down" },
        attempts: 4,
      });
    });

    it("queue: a permanent failure is dead-lettered, and a replay after the fix is processed", async () => {
      jobs.rejected.add("bad");
      const orders = createQueuedClient(OrderService, { queue });
      startWorker();
      const { jobId } = await orders.createOrder({ customerId: "bad" });
      await waitFor(() => finished(jobId));
      expect(jobs.attempts.get("bad")).toEqual([1]); // not retried
      const dead = await queue.deadLetters();
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({
        jobId,
        reason: "failed",
        error: { code: Code.InvalidArgument, message: "customer bad is not allowed" },
      });
      expect(dead[0]?.call).toMatchObject({
        service: "example.orders.v1.OrderService",
        method: "CreateOrder",
      });
      expect((await queue.counts()).dead).toBe(1);

      jobs.rejected.delete("bad"); // the fix
      events.length = 0;
      await queue.replay(jobId);
      await waitFor(() => finished(jobId));
      expect(eventsOf(jobId).map((e) => e.type)).toEqual(["job-completed"]);
      expect(jobs.effects.get("bad")).toBe(1);
      expect(jobs.attempts.get("bad")).toEqual([1, 1]);
      expect(await queue.deadLetters()).toEqual([]);
      await expect(queue.replay(jobId)).rejects.toThrow(/not in the dead-letter list/);
    });

    it("queue: an expired job is dead-lettered and not run", async () => {
      const orders = createQueuedClient(OrderService, { queue });
      const { jobId } = await orders.createOrder({ customerId: "late" }, { timeoutMs: 30 });
      await new Promise((r) => setTimeout(r, 60));
      startWorker();
      await waitFor(() => finished(jobId));
      expect(jobs.attempts.has("late")).toBe(false);
      const [dead] = await queue.deadLetters();
      expect(dead).toMatchObject({
        jobId,
        reason: "expired",
        error: { code: Code.DeadlineExceeded },
      });
    });

    it("queue: the worker's log lines carry the enqueuer's trace id", async () => {
      const parent = newRootContext();
      const orders = createQueuedClient(OrderService, { queue });
      const values = createContextValues().set(traceContextKey, parent);
      const receipt = await orders.createOrder({ customerId: "traced" }, { contextValues: values });
      const enqueueSpan = parseTraceparent(receipt.traceparent);
      expect(enqueueSpan?.traceId).toBe(parent.traceId);
      startWorker();
      await waitFor(() => finished(receipt.jobId));
      const handlerLine = logs.lines().find((l) => l.msg === "creating order");
      const callLine = logs.finished("server")[0];
      expect(handlerLine?.trace_id).toBe(parent.traceId);
      expect(callLine?.trace_id).toBe(parent.traceId);
      expect(callLine?.parent_span_id).toBe(enqueueSpan?.spanId);
      expect(callLine?.["grpc.code"]).toBe("OK");
      expect(callLine?.["peer.address"]).toBe(`queue:${queue.name}`);
      const jobLine = logs.lines().find((l) => l.msg === "job completed");
      expect(jobLine?.trace_id).toBe(parent.traceId);
    });

    it("queue: a caller's idempotency key de-duplicates two enqueues of one call", async () => {
      const orders = createQueuedClient(OrderService, { queue });
      const headers = { "idempotency-key": "order-42" };
      const a = await orders.createOrder({ customerId: "dup" }, { headers });
      const b = await orders.createOrder({ customerId: "dup" }, { headers });
      expect(a.idempotencyKey).toBe("order-42");
      startWorker();
      await waitFor(() => finished(a.jobId) && finished(b.jobId));
      expect(jobs.effects.get("dup")).toBe(1);
      const replayed = events.filter((e) => e.type === "job-completed" && e.replayed);
      expect(replayed).toHaveLength(1);
    });

    it("queue: close() stops taking jobs and finishes those in flight", async () => {
      jobs.delayMs = 150;
      const orders = createQueuedClient(OrderService, { queue });
      const w = startWorker({ concurrency: 1 });
      const first = await orders.createOrder({ customerId: "inflight" });
      await waitFor(() => w.inFlight === 1);
      const second = await orders.createOrder({ customerId: "after-close" });
      await w.close();
      expect(jobs.effects.get("inflight")).toBe(1);
      expect(eventsOf(first.jobId).map((e) => e.type)).toEqual(["job-completed"]);
      expect(jobs.attempts.has("after-close")).toBe(false);
      expect((await queue.counts()).waiting).toBe(1);
      expect(eventsOf(second.jobId)).toEqual([]);
    });

    it("queue: the client only queues unary methods", () => {
      const orders = createQueuedClient(OrderService, { queue });
      // @ts-expect-error watchOrders streams: not part of the queued client's type
      expect(() => orders.watchOrders({})).toThrow(
        /example.orders.v1.OrderService\/WatchOrders is server_streaming/,
      );
    });
  });
}
