// Suite "queue": queued calls through the Redis (BullMQ) backend. Enqueue
// latency with no worker running, then jobs per second end to end: a closed
// loop keeps N jobs outstanding (enqueued, not yet completed by the worker),
// so the figure is what producer + Redis + worker sustain together, and the
// latency is enqueue → the worker's completion. Skipped without Redis
// (failed with MESH_REQUIRE_SERVICES=1).

import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import { Redis } from "ioredis";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createRedisIdempotencyStore } from "../../src/idempotency/redis-store.js";
import type { Queue } from "../../src/queue/queue.js";
import { createQueueWorker } from "../../src/queue/queue-worker.js";
import { createQueuedClient } from "../../src/queue/queued-client.js";
import { createRedisQueue } from "../../src/queue/redis-queue.js";
import {
  type Goal,
  goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  mdTable,
  r,
} from "../lib/lab/lab.js";
import { Samples } from "../lib/stats.js";

const REDIS_HOST = process.env.MESH_REDIS_HOST ?? "127.0.0.1";
const REDIS_PORT = Number(process.env.MESH_REDIS_PORT ?? 6379);
const CONNECTION = { host: REDIS_HOST, port: REDIS_PORT };

interface Config {
  readonly label: string;
  /** idempotency is the worker's store: `redis` (what a fleet needs) or `memory`. */
  readonly idempotency: "redis" | "memory";
  readonly workerConcurrency: number;
  /** outstanding jobs in the end-to-end closed loop. */
  readonly inFlight: number;
}

const CONFIGS: readonly Config[] = [
  {
    label: "redis idempotency, worker ×16",
    idempotency: "redis",
    workerConcurrency: 16,
    inFlight: 64,
  },
  {
    label: "memory idempotency, worker ×16",
    idempotency: "memory",
    workerConcurrency: 16,
    inFlight: 64,
  },
  {
    label: "redis idempotency, worker ×1",
    idempotency: "redis",
    workerConcurrency: 1,
    inFlight: 8,
  },
];

interface Row {
  readonly config: string;
  readonly enqueue_per_s: number | null;
  readonly enqueue_p50_ms: number | null;
  readonly enqueue_p99_ms: number | null;
  readonly jobs_per_s: number | null;
  readonly e2e_p50_ms: number | null;
  readonly e2e_p99_ms: number | null;
  readonly jobs: number;
  readonly errors: number;
  readonly cpu_cores: number | null;
}

const ENQUEUE_CONCURRENCY = 16;

function redisReachable(timeoutMs = 1_000): Promise<string | true> {
  return new Promise((resolve) => {
    const socket = connect(CONNECTION);
    const done = (v: string | true) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done("no answer"), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", (e) => done(e.message));
  });
}

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

async function measure(config: Config, windowMs: number, warmupMs: number): Promise<Row> {
  const prefix = `connect-mesh-bench:${randomUUID()}`;
  const admin = new Redis(CONNECTION);
  // Enqueue latency is measured on a queue of its own that no worker drains,
  // so the end-to-end loop starts on an empty queue.
  const enqueueQueue: Queue = createRedisQueue({ name: "enqueue", prefix, connection: CONNECTION });
  const queue: Queue = createRedisQueue({ name: "bench", prefix, connection: CONNECTION });
  const store =
    config.idempotency === "redis"
      ? createRedisIdempotencyStore({ connection: CONNECTION, keyPrefix: `${prefix}:idem:` })
      : undefined;
  const orders = createQueuedClient(OrderService, { queue });
  const enqueueOrders = createQueuedClient(OrderService, { queue: enqueueQueue });
  let errors = 0;
  try {
    // 1. Enqueue latency, no worker: ENQUEUE_CONCURRENCY producers in a closed loop.
    const enqueueLat = new Samples();
    let enqueued = 0;
    const enqueueFor = async (ms: number, record: boolean) => {
      const until = performance.now() + ms;
      await Promise.all(
        Array.from({ length: ENQUEUE_CONCURRENCY }, async () => {
          while (performance.now() < until) {
            const t0 = performance.now();
            await enqueueOrders.createOrder({ customerId: "bench" });
            if (record) {
              enqueueLat.add(performance.now() - t0);
              enqueued++;
            }
          }
        }),
      );
    };
    await enqueueFor(Math.min(warmupMs, 500), false);
    const e0 = performance.now();
    await enqueueFor(Math.max(500, windowMs / 2), true);
    const enqueueSecs = (performance.now() - e0) / 1000;

    // 2. The end-to-end closed loop.
    const waiters = new Map<string, () => void>();
    const early = new Set<string>();
    const worker = createQueueWorker({
      queue,
      concurrency: config.workerConcurrency,
      logger: false,
      ...(store === undefined ? {} : { idempotency: { store } }),
      backoff: { initialMs: 10, maxMs: 100 },
      onEvent(e) {
        if (e.type === "job-completed") {
          const w = waiters.get(e.jobId);
          if (w !== undefined) w();
          else early.add(e.jobId);
        } else if (e.type === "job-dead-lettered" || e.type === "job-retry") {
          errors++;
        }
      },
      routes(router) {
        router.service(OrderService, {
          createOrder: (req) => ({ order: { id: randomUUID(), customerId: req.customerId } }),
          getOrder: (req) => ({ order: { id: req.id } }),
          cancelOrder: (req) => ({ order: { id: req.id } }),
          async *watchOrders() {},
        });
      },
    });

    const e2e = new Samples();
    let done = 0;
    let recording = false;
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const t0 = performance.now();
        const { jobId } = await orders.createOrder({ customerId: "e2e" });
        // A completion that raced ahead of this continuation is parked in `early`.
        if (!early.delete(jobId)) {
          await new Promise<void>((resolve) => waiters.set(jobId, resolve));
          waiters.delete(jobId);
        }
        if (recording) {
          e2e.add(performance.now() - t0);
          done++;
        }
      }
    };
    const loops = Array.from({ length: config.inFlight }, loop);
    await new Promise((res) => setTimeout(res, warmupMs));
    recording = true;
    const cpu0 = cpuSeconds();
    const w0 = performance.now();
    await new Promise((res) => setTimeout(res, windowMs));
    recording = false;
    const wallSecs = (performance.now() - w0) / 1000;
    const cpu = (cpuSeconds() - cpu0) / wallSecs;
    stop = true;
    await Promise.all(loops);
    await worker.close();
    const enq = enqueueLat.summary();
    const lat = e2e.summary();
    return {
      config: config.label,
      enqueue_per_s: r(enqueued / enqueueSecs, 0),
      enqueue_p50_ms: r(enq.p50, 2),
      enqueue_p99_ms: r(enq.p99, 2),
      jobs_per_s: r(done / wallSecs, 0),
      e2e_p50_ms: r(lat.p50, 2),
      e2e_p99_ms: r(lat.p99, 2),
      jobs: done,
      errors,
      cpu_cores: r(cpu, 2),
    };
  } finally {
    await queue.close();
    await enqueueQueue.close();
    await store?.close();
    await deleteKeys(admin, prefix);
    admin.disconnect();
  }
}

export const queue: LabSuite = {
  lab: true,
  name: "queue",
  title: "Queued calls: Redis (BullMQ) backend, end to end",
  notes: [
    "- One process (producer, BullMQ queue and worker share one event loop and one Redis on 127.0.0.1); `cpu_cores` is that process's CPU, Redis's is not counted.",
    `- Enqueue: ${ENQUEUE_CONCURRENCY} producers in a closed loop, no worker running; latency is \`createQueuedClient(...).createOrder()\` until the queue accepted the job (one BullMQ \`add\`).`,
    "- End to end: a closed loop keeps `inFlight` jobs outstanding; each job is enqueued, picked up by the worker, run through the full server chain (observe, deadline, idempotency with the named store) and completed; latency is enqueue start → the worker's `completed` event.",
    "- Handler: CreateOrder returning at once (no I/O), so the figures are the queue's own overhead.",
  ],
  configs: () => [],
  budgetMs: (quick) => (quick ? 60_000 : 300_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const reachable = await redisReachable();
    if (reachable !== true) {
      const why = `redis at ${REDIS_HOST}:${REDIS_PORT} is not reachable (${reachable})`;
      if (process.env.MESH_REQUIRE_SERVICES === "1") {
        return {
          method: {},
          results: {},
          goals: [],
          markdown: "",
          failures: [`${why}; MESH_REQUIRE_SERVICES=1 requires it`],
        };
      }
      ctx.log(`suite queue: SKIPPED: ${why}`);
      return { method: {}, results: {}, goals: [], markdown: "", failures: [], skipped: why };
    }
    const windowMs = ctx.quick ? 1_000 : 5_000;
    const warmupMs = ctx.quick ? 300 : 1_500;
    const configs = ctx.quick ? CONFIGS.slice(0, 1) : CONFIGS;
    const rows: Row[] = [];
    for (const c of configs) {
      ctx.log(`suite queue: ${c.label}`);
      rows.push(await measure(c, windowMs, warmupMs));
    }
    const first = rows[0];
    const goals: Goal[] = [
      goal(
        "end-to-end jobs/s (redis idempotency, ×16)",
        "≥ 1000",
        first?.jobs_per_s,
        (v) => v >= 1_000,
        (v) => v.toFixed(0),
      ),
      goal(
        "enqueue p99",
        "≤ 10 ms",
        first?.enqueue_p99_ms,
        (v) => v <= 10,
        (v) => `${v} ms`,
      ),
    ];
    const failures = rows
      .filter((x) => x.errors > 0 || x.jobs === 0)
      .map((x) => `${x.config}: ${x.errors} errors, ${x.jobs} jobs`);
    return {
      method: { windowMs, warmupMs, enqueueConcurrency: ENQUEUE_CONCURRENCY, configs },
      results: { rows },
      goals,
      failures,
      markdown: mdTable(
        [
          "config",
          "enqueue/s",
          "enqueue p50 ms",
          "enqueue p99 ms",
          "jobs/s e2e",
          "e2e p50 ms",
          "e2e p99 ms",
          "jobs",
          "errors",
          "CPU cores",
        ],
        rows.map((x) => [
          x.config,
          String(x.enqueue_per_s ?? "–"),
          String(x.enqueue_p50_ms ?? "–"),
          String(x.enqueue_p99_ms ?? "–"),
          String(x.jobs_per_s ?? "–"),
          String(x.e2e_p50_ms ?? "–"),
          String(x.e2e_p99_ms ?? "–"),
          String(x.jobs),
          String(x.errors),
          String(x.cpu_cores ?? "–"),
        ]),
      ),
    };
  },
};
