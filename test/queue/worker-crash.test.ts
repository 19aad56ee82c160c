import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createRedisIdempotencyStore } from "../../src/idempotency/redis-store.js";
import { createQueueWorker, type QueueWorkerEvent } from "../../src/queue/queue-worker.js";
import { createQueuedClient } from "../../src/queue/queued-client.js";
import { createRedisQueue } from "../../src/queue/redis-queue.js";
import { createTestRedis, REDIS_HOST, REDIS_PORT, requireRedis } from "../support/redis.js";
import { waitFor } from "../support/wait-for.js";

const hasRedis = await requireRedis();
const FIXTURE = fileURLToPath(new URL("./fixtures/crash-worker.ts", import.meta.url));
// Short visibility timeout so the redelivery comes within the test's time.
const LOCK_MS = 1_000;
// Bounds the dead worker's idempotency claim (lease = attempt timeout + 1 s margin).
const ATTEMPT_TIMEOUT_MS = 2_000;

/** startCrashWorker spawns the fixture and collects its stdout lines. */
function startCrashWorker(env: Record<string, string>): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let buf = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    lines.push(...parts);
  });
  return { child, lines };
}

describe.skipIf(!hasRedis)("queue worker killed mid-job (Redis)", () => {
  const t = createTestRedis();
  const prefix = t.keyPrefix.slice(0, -1);
  const connection = { host: REDIS_HOST, port: REDIS_PORT };
  let child: ChildProcess | undefined;
  afterAll(async () => {
    child?.kill("SIGKILL");
    await t.close();
  });

  it("queue: a SIGKILLed worker's jobs are redelivered and take effect exactly once", async () => {
    const queue = createRedisQueue({
      name: "crash",
      prefix,
      connection,
      lockDurationMs: LOCK_MS,
      stalledIntervalMs: LOCK_MS / 2,
    });
    const orders = createQueuedClient(OrderService, { queue });
    const done = await orders.createOrder({ customerId: "done" }); // effect, then killed before ack
    const hang = await orders.createOrder({ customerId: "hang" }); // killed before any effect

    const crash = startCrashWorker({
      REDIS_HOST,
      REDIS_PORT: String(REDIS_PORT),
      CRASH_PREFIX: prefix,
      CRASH_QUEUE: "crash",
      CRASH_LOCK_MS: String(LOCK_MS),
      CRASH_ATTEMPT_TIMEOUT_MS: String(ATTEMPT_TIMEOUT_MS),
    });
    child = crash.child;
    await waitFor(
      () => crash.lines.includes("effect-done done") && crash.lines.includes("hanging hang"),
      45_000,
    );
    crash.child.kill("SIGKILL");
    expect(await t.redis.get(`${prefix}:effects:done`)).toBe("1");
    expect(await queue.counts()).toMatchObject({ active: 2, completed: 0 });

    // A healthy worker, sharing the Redis idempotency store, takes over.
    const redis = new Redis(connection);
    const store = createRedisIdempotencyStore({ connection, keyPrefix: `${prefix}:idem:` });
    const events: QueueWorkerEvent[] = [];
    const worker = createQueueWorker({
      queue,
      logger: false,
      idempotency: { store },
      onEvent: (e) => {
        if ("jobId" in e) events.push(e);
      },
      routes(router) {
        router.service(OrderService, {
          async createOrder(req) {
            await redis.incr(`${prefix}:effects:${req.customerId}`);
            return { order: { id: `o-${req.customerId}` } };
          },
          getOrder: (req) => ({ order: { id: req.id } }),
          cancelOrder: (req) => ({ order: { id: req.id } }),
          async *watchOrders() {},
        });
      },
    });
    try {
      const completed = (jobId: string) =>
        events.find((e) => e.jobId === jobId && e.type === "job-completed");
      await waitFor(
        // Redelivery needs the lock to lapse and a stalled check, the hung claim
        // its lease: seconds; generous for a busy host.
        () => completed(done.jobId) !== undefined && completed(hang.jobId) !== undefined,
        40_000,
      );
      // The stored outcome was replayed: the handler did not run again.
      expect(completed(done.jobId)).toMatchObject({ replayed: true, attempt: 1 });
      expect(completed(hang.jobId)).toMatchObject({ replayed: false, attempt: 1 });
      expect(await t.redis.get(`${prefix}:effects:done`)).toBe("1");
      expect(await t.redis.get(`${prefix}:effects:hang`)).toBe("1");
      expect(events.filter((e) => e.type !== "job-completed")).toEqual([]);
      expect(await queue.counts()).toMatchObject({ active: 0, waiting: 0, dead: 0, completed: 2 });
    } finally {
      await worker.close();
      await queue.close();
      await store.close();
      redis.disconnect();
    }
  });
});
