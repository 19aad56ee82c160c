import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createBackoff } from "../../src/call/backoff.js";
import { decideFailure, QUEUE_TRANSIENT_CODES } from "../../src/queue/failure-policy.js";
import { createMemoryQueue } from "../../src/queue/memory-queue.js";
import type { Queue } from "../../src/queue/queue.js";
import { createQueueWorker, type QueueWorkerEvent } from "../../src/queue/queue-worker.js";
import {
  decodeQueuedCall,
  effectiveIdempotencyKey,
  encodeQueuedCall,
  type QueuedCall,
} from "../../src/queue/queued-call.js";
import { createQueuedClient } from "../../src/queue/queued-client.js";
import { formatFailedReason, parseFailedReason } from "../../src/queue/redis-queue.js";
import { waitFor } from "../support/wait-for.js";
import { createOrderJobs, OrderService } from "./order-jobs.js";

const CALL: QueuedCall = {
  service: "example.orders.v1.OrderService",
  method: "CreateOrder",
  request: new Uint8Array([10, 3, 97, 98, 99]),
  idempotencyKey: "k-1",
  traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  enqueuedAt: 1_000,
  expiresAt: 61_000,
  replays: 0,
};

describe("queue failure policy", () => {
  const transient = new Set(QUEUE_TRANSIENT_CODES);
  const backoff = createBackoff({ initialMs: 100, maxMs: 1_000, random: () => 0.5 });
  const base = {
    attempt: 1,
    maxAttempts: 3,
    nowMs: 0,
    expiresAt: 10_000,
    transientCodes: transient,
    backoff,
  };
  it.each([
    [{ code: Code.Unavailable }, { kind: "retry", delayMs: 50 }],
    [{ code: Code.DeadlineExceeded }, { kind: "retry", delayMs: 50 }],
    [{ code: Code.ResourceExhausted }, { kind: "retry", delayMs: 50 }],
    [{ code: Code.Aborted }, { kind: "retry", delayMs: 50 }],
    [{ code: Code.Internal }, { kind: "retry", delayMs: 50 }],
    [{ code: Code.Unknown }, { kind: "retry", delayMs: 50 }],
    [
      { code: Code.Unavailable, attempt: 2 },
      { kind: "retry", delayMs: 100 },
    ],
    [
      { code: Code.Unavailable, attempt: 3 },
      { kind: "dead", reason: "exhausted" },
    ],
    [
      { code: Code.Unavailable, expiresAt: 50 },
      { kind: "dead", reason: "expired" },
    ],
    [{ code: Code.InvalidArgument }, { kind: "dead", reason: "failed" }],
    [{ code: Code.NotFound }, { kind: "dead", reason: "failed" }],
    [{ code: Code.FailedPrecondition }, { kind: "dead", reason: "failed" }],
    [{ code: Code.Canceled }, { kind: "dead", reason: "failed" }],
    [
      { code: Code.InvalidArgument, attempt: 3 },
      { kind: "dead", reason: "failed" },
    ],
  ])("queue: decideFailure(%o) is %o", (input, want) => {
    expect(decideFailure({ ...base, ...input })).toEqual(want);
  });
});

describe("queue records", () => {
  it("queue: a call survives encode/decode through JSON", () => {
    const call = { ...CALL, tracestate: "a=b", headers: { "x-tenant": "t1" } };
    expect(decodeQueuedCall(JSON.parse(JSON.stringify(encodeQueuedCall(call))))).toEqual(call);
  });

  it.each([
    null,
    1,
    {},
    { v: 2 },
    { ...encodeQueuedCall(CALL), request: 5 },
    { ...encodeQueuedCall(CALL), expiresAt: "x" },
  ])("queue: decodeQueuedCall rejects %o", (data) => {
    expect(() => decodeQueuedCall(data)).toThrow(/job data/);
  });

  it("queue: each replay runs under a key of its own, within 255 characters", () => {
    expect(effectiveIdempotencyKey(CALL)).toBe("k-1");
    expect(effectiveIdempotencyKey({ ...CALL, replays: 2 })).toBe("k-1~replay-2");
    const long = effectiveIdempotencyKey({ ...CALL, idempotencyKey: "x".repeat(255), replays: 1 });
    expect(long).toMatch(/^[0-9a-f]{64}~replay-1$/);
  });

  it("queue: dead-letter reasons round-trip through BullMQ's failedReason", () => {
    const error = { code: Code.InvalidArgument, message: "bad: (really)\nsecond line" };
    expect(parseFailedReason(formatFailedReason("failed", error))).toEqual({
      reason: "failed",
      error,
    });
    expect(parseFailedReason("job stalled more than allowable limit")).toEqual({
      reason: "stalled",
      error: { code: Code.Aborted, message: "job stalled more than allowable limit" },
    });
  });
});

describe("queued client", () => {
  const recording = () => {
    const calls: QueuedCall[] = [];
    const queue = {
      ...createMemoryQueue(),
      enqueue: async (c: QueuedCall) => {
        calls.push(c);
        return "job-1";
      },
    };
    return { queue: queue as Queue, calls };
  };

  it("queue: the client stores request bytes, key, trace, expiry and headers", async () => {
    const { queue, calls } = recording();
    const orders = createQueuedClient(OrderService, { queue, now: () => 5_000 });
    const receipt = await orders.createOrder(
      { customerId: "c-1" },
      {
        timeoutMs: 1_000,
        headers: {
          "idempotency-key": "mine",
          "x-tenant": "t1",
          "grpc-timeout": "1S",
          te: "trailers",
        },
      },
    );
    expect(receipt).toEqual({
      jobId: "job-1",
      idempotencyKey: "mine",
      traceparent: calls[0]?.traceparent,
      expiresAt: 6_000,
    });
    expect(calls[0]).toMatchObject({
      service: "example.orders.v1.OrderService",
      method: "CreateOrder",
      idempotencyKey: "mine",
      headers: { "x-tenant": "t1" },
      enqueuedAt: 5_000,
      expiresAt: 6_000,
      replays: 0,
    });
    expect(calls[0]?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const ttl = await orders.createOrder({ customerId: "c-2" });
    expect(ttl.expiresAt).toBe(5_000 + 24 * 3_600_000);
  });

  it("queue: a bad idempotency key is INVALID_ARGUMENT and nothing is enqueued", async () => {
    const { queue, calls } = recording();
    const orders = createQueuedClient(OrderService, { queue });
    await expect(
      orders.createOrder({}, { headers: { "idempotency-key": "has space" } }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
    expect(calls).toEqual([]);
  });

  it("queue: a queue that does not accept the call is UNAVAILABLE, cause kept", async () => {
    const boom = new Error("redis is down");
    const queue = { ...createMemoryQueue({ name: "q" }), enqueue: () => Promise.reject(boom) };
    const orders = createQueuedClient(OrderService, { queue });
    const err = await orders.createOrder({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect(err).toMatchObject({ code: Code.Unavailable, cause: boom });
    expect((err as ConnectError).rawMessage).toMatch(
      /queue "q" did not accept example.orders.v1.OrderService\/CreateOrder: redis is down/,
    );
  });

  it("queue: options are validated when the client and worker are built", () => {
    const queue = createMemoryQueue();
    expect(() => createQueuedClient(OrderService, { queue, defaultTtlMs: 0 })).toThrow(RangeError);
    expect(() => createQueueWorker({ queue, routes: () => {}, concurrency: 0 })).toThrow(
      /concurrency 0/,
    );
    expect(() => createQueueWorker({ queue, routes: () => {}, maxAttempts: 0 })).toThrow(
      /maxAttempts 0/,
    );
  });
});

describe("queue worker", () => {
  it("queue: a method the worker does not serve is dead-lettered as UNIMPLEMENTED", async () => {
    const queue = createMemoryQueue();
    const events: QueueWorkerEvent[] = [];
    const worker = createQueueWorker({
      queue,
      logger: false,
      routes: () => {},
      onEvent: (e) => "jobId" in e && events.push(e),
    });
    const { jobId } = await createQueuedClient(OrderService, { queue }).getOrder({ id: "1" });
    await waitFor(() => events.length === 1);
    expect(events[0]).toMatchObject({
      jobId,
      type: "job-dead-lettered",
      reason: "failed",
      error: { code: Code.Unimplemented },
    });
    await worker.close();
  });

  it("queue: close({ graceMs }) cancels jobs still running after it and puts them back", async () => {
    const queue = createMemoryQueue();
    const jobs = createOrderJobs();
    jobs.delayMs = 10_000;
    const events: QueueWorkerEvent[] = [];
    const worker = createQueueWorker({
      queue,
      logger: false,
      routes: jobs.routes,
      onEvent: (e) => "jobId" in e && events.push(e),
    });
    await createQueuedClient(OrderService, { queue }).createOrder({ customerId: "slow" });
    await waitFor(() => worker.inFlight === 1);
    const t0 = performance.now();
    await worker.close({ graceMs: 50 });
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect(events.map((e) => e.type)).toEqual(["job-released"]);
    expect(await queue.counts()).toMatchObject({ waiting: 1, active: 0, dead: 0 });
    await queue.close();
  });
});
