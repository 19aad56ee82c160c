// Lab load generator child: drives GetOrder calls through one client —
// connect-mesh (createMeshTransport with the given options) or grpc-js (one
// channel with a service config) — at a fixed rate (open loop) or a fixed
// concurrency (closed loop). The runner cuts the run into named phases; each
// `phase` command returns what the client saw since the previous one. Mesh
// transport events (ejections, endpoint sets, breaker transitions) are kept
// with timestamps. Driven over IPC (see protocol.ts).

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues } from "@connectrpc/connect";
import type * as grpcTypes from "@grpc/grpc-js";
import {
  type GetOrderRequest,
  GetOrderRequestSchema,
  type GetOrderResponse,
  GetOrderResponseSchema,
  OrderService,
} from "../../../gen/example/orders/v1/orders_pb.js";
import type { MeshTransportEvent, MeshTransportOptions } from "../../../src/index.js";
import { errorMessage, serveCommands } from "../child.js";
import { Samples } from "../stats.js";
import {
  type FirstOkAfter,
  type FirstOkAfterResult,
  type LabEvent,
  type LatencyStats,
  type LoadgenEvents,
  type LoadgenInit,
  nowMs,
  type PhaseStats,
} from "./protocol.js";
import { createRegistry } from "./registry.js";

/** CallFn makes one GetOrder call tagged with its phase; it resolves with the replica that served it. */
type CallFn = (id: string, phase: string) => Promise<string>;

interface Client {
  call: CallFn;
  close(): Promise<void>;
}

class Phase {
  readonly startAtMs = nowMs();
  endAtMs: number | undefined;
  started = 0;
  completed = 0;
  ok = 0;
  errors = 0;
  breakerOpen = 0;
  breakerOpenAfterAttempts = 0;
  skipped = 0;
  maxInFlightSeen = 0;
  firstError: string | undefined;
  readonly errorsByCode = new Map<string, number>();
  readonly servedBy = new Map<string, number>();
  readonly retryEvents = new Map<string, number>();
  readonly okLatency = new Samples(1 << 14);
  readonly breakerOpenLatency = new Samples(1 << 10);
  readonly errorLatency = new Samples(1 << 10);
  /** buckets[i] counts the calls started in [i, i + 1) × init.bucketMs after the phase began. */
  readonly buckets: Array<{ ok: number; errors: number }> = [];

  constructor(readonly name: string) {}

  bucket(startAtMs: number): { ok: number; errors: number } | undefined {
    const ms = init?.bucketMs;
    if (ms === undefined) return undefined;
    const i = Math.max(0, Math.floor((startAtMs - this.startAtMs) / ms));
    while (this.buckets.length <= i) this.buckets.push({ ok: 0, errors: 0 });
    return this.buckets[i];
  }

  stats(): PhaseStats {
    return {
      name: this.name,
      startAtMs: this.startAtMs,
      endAtMs: this.endAtMs ?? nowMs(),
      started: this.started,
      completed: this.completed,
      ok: this.ok,
      errors: this.errors,
      errorsByCode: Object.fromEntries(this.errorsByCode),
      breakerOpen: this.breakerOpen,
      breakerOpenAfterAttempts: this.breakerOpenAfterAttempts,
      ...(this.firstError === undefined ? {} : { firstError: this.firstError }),
      okLatency: latencyStats(this.okLatency),
      breakerOpenLatency: latencyStats(this.breakerOpenLatency),
      errorLatency: latencyStats(this.errorLatency),
      servedBy: Object.fromEntries(this.servedBy),
      retryEvents: Object.fromEntries(this.retryEvents),
      maxInFlightSeen: this.maxInFlightSeen,
      skipped: this.skipped,
      ...(init?.bucketMs === undefined ? {} : { buckets: this.buckets.map((b) => ({ ...b })) }),
    };
  }
}

function latencyStats(s: Samples): LatencyStats {
  const x = s.summary();
  const n = (v: number) => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  return {
    count: x.count,
    p50: n(x.p50),
    p90: n(x.p90),
    p99: n(x.p99),
    p999: n(x.p999),
    max: n(x.max),
    mean: n(x.mean),
  };
}

function bump(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

// The mesh logs one JSON line per call to stdout by default (MESH_LOG_LEVEL,
// default info); these suites measure balancing and retries, not logging.
// BENCH_MESH_LOG_LEVEL sets another level.
process.env.MESH_LOG_LEVEL = process.env.BENCH_MESH_LOG_LEVEL ?? "silent";

let client: Client | undefined;
let init: LoadgenInit | undefined;
let phase = new Phase("init");
const phases: Phase[] = [phase];
let running = false;
let inFlight = 0;
let seq = 0;
const loops: Promise<void>[] = [];
let ticker: NodeJS.Timeout | undefined;
const events: LabEvent[] = [];
const firstOkAtMs: Record<string, number> = {};
// Completion times of successful calls, ascending (for firstOkAfter).
const okTimes = new Samples(1 << 16);

function onMeshEvent(e: MeshTransportEvent): void {
  const at = nowMs();
  if ("source" in e) {
    if (e.source === "outlier") {
      events.push({
        atMs: at,
        kind: e.type,
        address: e.address,
        ...("reason" in e ? { reason: e.reason } : {}),
      });
    } else if (e.source === "balancer") {
      events.push(
        e.type === "endpoints"
          ? { atMs: at, kind: "endpoints", added: e.added, removed: e.removed, size: e.size }
          : { atMs: at, kind: e.type, address: e.address },
      );
    } else if (e.type !== "stale" || events.length < 1000) {
      events.push({ atMs: at, kind: `resolver:${e.type}` });
    }
    return;
  }
  if (e.type === "breaker") {
    events.push({ atMs: at, kind: "breaker", from: e.from, to: e.to, reason: e.reason });
    return;
  }
  bump(phase.retryEvents, e.type === "give-up" ? `give-up:${e.reason}` : e.type);
}

/** neverSent holds the errors of mesh calls that never picked an endpoint (nothing was sent). */
const neverSent = new WeakSet<object>();

function isBreakerOpen(err: unknown): boolean {
  if (!(err instanceof ConnectError)) {
    return false;
  }
  const cause = err.cause as { name?: unknown } | undefined;
  return (
    (typeof cause === "object" && cause !== null && cause.name === "BreakerOpenError") ||
    err.rawMessage.startsWith("circuit breaker ")
  );
}

async function createMesh(spec: Extract<LoadgenInit["client"], { kind: "mesh" }>, tag: string) {
  const mesh = await import("../../../src/index.js");
  const timeoutMs = init?.timeoutMs ?? 1000;
  const transport = mesh.createMeshTransport({
    acceptCompression: [],
    ...(spec.options as Partial<MeshTransportOptions>),
    target: spec.target,
    ...(spec.registry === undefined ? {} : { registries: [createRegistry(spec.registry)] }),
    onEvent: onMeshEvent,
  });
  const orders = createClient(OrderService, transport);
  return {
    async call(id: string, phaseName: string) {
      const headers = { "x-bench-client": tag, "x-bench-phase": phaseName };
      const contextValues = createContextValues();
      try {
        const options = { timeoutMs, headers, contextValues };
        const res =
          init?.method === "CreateOrder"
            ? await orders.createOrder(
                { customerId: `${phaseName}/${id}`, items: [{ sku: "b", quantity: 1 }] },
                options,
              )
            : await orders.getOrder({ id }, options);
        return res.order?.servedBy ?? "?";
      } catch (e) {
        // No endpoint picked: no attempt left the process (an open breaker
        // refused the first one).
        if (contextValues.get(mesh.meshCallKey)?.endpoint === undefined) {
          neverSent.add(e as object);
        }
        throw e;
      }
    },
    close: () => transport.close(),
  } satisfies Client;
}

async function createGrpcJs(
  spec: Extract<LoadgenInit["client"], { kind: "grpc-js" }>,
  tag: string,
): Promise<Client> {
  const grpc: typeof grpcTypes = await import("@grpc/grpc-js");
  const timeoutMs = init?.timeoutMs ?? 1000;
  const options: grpcTypes.ChannelOptions =
    spec.serviceConfig === undefined
      ? {}
      : { "grpc.service_config": JSON.stringify(spec.serviceConfig) };
  const c = new grpc.Client(spec.target, grpc.credentials.createInsecure(), options);
  const path = `/${OrderService.typeName}/${OrderService.method.getOrder.name}`;
  const ser = (m: GetOrderRequest) => Buffer.from(toBinary(GetOrderRequestSchema, m));
  const de = (b: Buffer): GetOrderResponse => fromBinary(GetOrderResponseSchema, b);
  return {
    call(id, phaseName) {
      const md = new grpc.Metadata();
      md.set("x-bench-client", tag);
      md.set("x-bench-phase", phaseName);
      return new Promise((resolve, reject) => {
        c.makeUnaryRequest(
          path,
          ser,
          de,
          create(GetOrderRequestSchema, { id }),
          md,
          { deadline: Date.now() + timeoutMs },
          (err, res) => {
            if (err) {
              reject(err);
            } else {
              resolve(res?.order?.servedBy ?? "?");
            }
          },
        );
      });
    },
    async close() {
      c.close();
    },
  };
}

function codeName(err: unknown): string {
  if (err instanceof ConnectError) {
    return Code[err.code] ?? String(err.code);
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === "number") {
    // grpc-js codes are the same numbers as Connect's.
    return Code[code] ?? String(code);
  }
  return "unknown";
}

/** one runs one call and records it in the phase current at its start. */
async function one(c: Client): Promise<boolean> {
  const id = `o-${seq++}`;
  const p = phase;
  p.started++;
  inFlight++;
  if (inFlight > p.maxInFlightSeen) {
    p.maxInFlightSeen = inFlight;
  }
  const t0 = performance.now();
  const b = p.bucket(nowMs());
  try {
    const servedBy = await c.call(id, p.name);
    const dt = performance.now() - t0;
    p.completed++;
    p.ok++;
    p.okLatency.add(dt);
    if (b !== undefined) b.ok++;
    bump(p.servedBy, servedBy);
    const at = nowMs();
    okTimes.add(at);
    firstOkAtMs[servedBy] ??= at;
    return true;
  } catch (err) {
    const dt = performance.now() - t0;
    p.completed++;
    p.errors++;
    p.errorLatency.add(dt);
    if (b !== undefined) b.errors++;
    bump(p.errorsByCode, codeName(err));
    p.firstError ??= errorMessage(err);
    if (isBreakerOpen(err)) {
      if (neverSent.has(err as object)) {
        p.breakerOpen++;
        p.breakerOpenLatency.add(dt);
      } else {
        p.breakerOpenAfterAttempts++;
      }
    }
    return false;
  } finally {
    inFlight--;
  }
}

async function closedLoop(c: Client): Promise<void> {
  while (running) {
    if (!(await one(c))) {
      // A failing call may settle without I/O; yield so IPC and timers still run.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

function startRate(c: Client, rps: number, maxInFlight: number, poisson: boolean): void {
  const t0 = performance.now();
  const gapMs = 1000 / rps;
  // Exponential gaps (a Poisson process) or even ones; 1 - random() is in (0, 1].
  const nextGap = poisson ? () => -Math.log(1 - Math.random()) * gapMs : () => gapMs;
  let nextAt = t0 + nextGap();
  const tick = () => {
    const now = performance.now();
    while (nextAt <= now) {
      nextAt += nextGap();
      if (inFlight >= maxInFlight) {
        phase.skipped++;
        continue;
      }
      void one(c);
    }
  };
  ticker = setInterval(tick, 2);
}

/** firstOkAfter finds the first ok completion time >= atMs (okTimes is ascending). */
function findOkAfter(atMs: number): number | null {
  const sorted = okTimes.sorted();
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < atMs) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length ? (sorted[lo] as number) : null;
}

serveCommands({
  async init(args) {
    init = args as LoadgenInit;
    client =
      init.client.kind === "mesh"
        ? await createMesh(init.client, init.tag)
        : await createGrpcJs(init.client, init.tag);
    if (init.probe !== false) {
      await client.call("probe", "probe");
    }
  },
  start() {
    const c = client;
    const i = init;
    if (c === undefined || i === undefined) {
      throw new Error("start before init");
    }
    running = true;
    if (i.load.mode === "closed") {
      for (let k = 0; k < i.load.inFlight; k++) {
        loops.push(closedLoop(c));
      }
    } else {
      startRate(c, i.load.rps, i.load.maxInFlight, i.load.arrivals === "poisson");
    }
  },
  /**
   * phase ends the current phase, returns its stats so far (calls still in
   * flight are missing) and starts one named `name`.
   */
  phase(args): PhaseStats {
    const { name } = args as { name: string };
    phase.endAtMs = nowMs();
    const stats = phase.stats();
    phase = new Phase(name);
    phases.push(phase);
    return stats;
  },
  /** drain stops starting calls, waits (bounded) for those in flight, and returns every phase. */
  async drain(args): Promise<PhaseStats[]> {
    const { waitMs = 5_000 } = (args ?? {}) as { waitMs?: number };
    running = false;
    if (ticker !== undefined) {
      clearInterval(ticker);
    }
    phase.endAtMs ??= nowMs();
    const until = performance.now() + waitMs;
    while (inFlight > 0 && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return phases.map((p) => p.stats());
  },
  events(): LoadgenEvents {
    return { events, firstOkAtMs };
  },
  async "first-ok-after"(args): Promise<FirstOkAfterResult> {
    const { atMs, waitMs = 0 } = args as FirstOkAfter;
    const until = performance.now() + waitMs;
    for (;;) {
      const found = findOkAfter(atMs);
      if (found !== null || performance.now() >= until) {
        return { okAtMs: found };
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  },
  async stop() {
    running = false;
    if (ticker !== undefined) {
      clearInterval(ticker);
    }
    await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 2000))]);
    await client?.close();
    setTimeout(() => process.exit(0), 20).unref();
  },
});
