// Suite "overload-balance" (issue 17 §3-4): load-aware balancing and shared
// rate limits. In one process (the suite measures counts and shares, not CPU
// per call): three connect-mesh servers on loopback and mesh clients driving
// open-loop load.
// - Balancing: three replicas, one with half the capacity (a handler that
//   serves W calls at a time for S ms and sheds the rest with
//   RESOURCE_EXHAUSTED + pushback), offered 2x (and 0.8x) the total
//   capacity; p2c-ewma with the load penalty against p2c-ewma without it,
//   interleaved in one run.
// - Rate limit: 10 clients over 3 replicas sharing a Redis limit of R/s: the
//   calls admitted per second.
// - Redis down: the fail modes (open admits, closed refuses at once).

import { createServer as createNetServer } from "node:net";
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { Redis } from "ioredis";
import { EchoService } from "../../gen/test/v1/echo_pb.js";
import {
  createMeshServer,
  createMeshTransport,
  createRedisRateLimitStore,
  type MeshServer,
  type MeshTransport,
  type RateLimitOptions,
  type RedisRateLimitStore,
} from "../../src/index.js";
import {
  type Goal,
  goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  mdTable,
  r,
} from "../lib/lab/lab.js";
import { simulate } from "../lib/lab/overload-sim.js";

// Long service times keep the call rate (and this process's CPU) low: the
// machine is shared, and a CPU-starved client measures its own queue.
const SERVICE_MS = 200;
const PUSHBACK_MS = 100;
// Calls each replica serves at once: capacity = workers * 1000 / SERVICE_MS.
const WORKERS = [4, 4, 2] as const;
const CAPACITY = WORKERS.reduce((n, w) => n + (w * 1000) / SERVICE_MS, 0);
const DEADLINE_MS = 2_000;
// The rate-limit rows judge admissions, not latency: a deadline long enough
// that a CPU-starved client does not time calls out before they are decided.
const LIMIT_DEADLINE_MS = 10_000;
const MAX_IN_FLIGHT = 2_000;
const CONFIGS = ["penalty", "no penalty"] as const;
// The shared limit R; offered 2.5 R. Low enough that 10 clients in one
// process can offer 2.5 R on a busy 2-core machine.
const RATE_LIMIT_RPS = 40;

interface Replica {
  readonly name: string;
  readonly server: MeshServer;
  readonly address: string;
  served: number;
  shed: number;
  /** admittedAt holds the second (since the replica's epoch) of each admitted call, for rate rows. */
  readonly admittedBySecond: Map<number, number>;
}

const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** startReplica serves Echo with `workers` slots of SERVICE_MS each, shedding beyond them. */
async function startReplica(
  name: string,
  workers: number | undefined,
  rateLimit?: RateLimitOptions,
): Promise<Replica> {
  let busy = 0;
  const replica = { name, served: 0, shed: 0, admittedBySecond: new Map() } as unknown as Replica;
  const impl: Partial<ServiceImpl<typeof EchoService>> = {
    async echo(req) {
      const second = Math.floor(Date.now() / 1000);
      replica.admittedBySecond.set(second, (replica.admittedBySecond.get(second) ?? 0) + 1);
      if (workers !== undefined) {
        if (busy >= workers) {
          replica.shed++;
          throw new ConnectError(
            `${name} is at capacity`,
            Code.ResourceExhausted,
            new Headers({ "grpc-retry-pushback-ms": String(PUSHBACK_MS) }),
          );
        }
        busy++;
        try {
          await sleep(SERVICE_MS);
        } finally {
          busy--;
        }
      }
      replica.served++;
      return { payload: req.payload, servedBy: name };
    },
  };
  const server = createMeshServer({
    routes: (router) => router.service(EchoService, impl),
    logger: false,
    idempotency: false,
    ...(rateLimit === undefined ? {} : { rateLimit }),
  });
  const bound = await server.listen();
  return Object.assign(replica, { server, address: bound.address });
}

interface LoadResult {
  readonly offered: number;
  readonly ok: number;
  readonly exhausted: number;
  readonly unavailable: number;
  readonly other: number;
  readonly elapsedMs: number;
  /** latencies of successful calls (ms), sorted. */
  readonly okLatencies: number[];
  /** latencies of failed calls (ms), sorted. */
  readonly errLatencies: number[];
}

/** openLoop issues `rps` calls/s spread over `clients` for `durationMs` and waits for them. */
async function openLoop(
  clients: readonly ReturnType<typeof createClient<typeof EchoService>>[],
  rps: number,
  durationMs: number,
  deadlineMs = DEADLINE_MS,
): Promise<LoadResult> {
  const okLatencies: number[] = [];
  const errLatencies: number[] = [];
  let ok = 0;
  let exhausted = 0;
  let unavailable = 0;
  let other = 0;
  let issued = 0;
  let inFlight = 0;
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();
  const one = (i: number) => {
    const started = performance.now();
    inFlight++;
    const p = clients[i % clients.length]!.echo({}, { timeoutMs: deadlineMs }).then(
      () => {
        ok++;
        okLatencies.push(performance.now() - started);
      },
      (e: unknown) => {
        const code = ConnectError.from(e).code;
        if (code === Code.ResourceExhausted) exhausted++;
        else if (code === Code.Unavailable) unavailable++;
        else other++;
        errLatencies.push(performance.now() - started);
      },
    );
    const tracked = p.finally(() => {
      inFlight--;
      pending.delete(tracked);
    });
    pending.add(tracked);
  };
  for (;;) {
    const elapsed = performance.now() - t0;
    if (elapsed >= durationMs) break;
    // Catch up on the schedule after a late tick (a busy machine), bounded.
    const due = Math.floor((elapsed * rps) / 1000);
    while (issued < due && inFlight < MAX_IN_FLIGHT) one(issued++);
    await sleep(5);
  }
  const elapsedMs = performance.now() - t0;
  await Promise.all([...pending]);
  okLatencies.sort((a, b) => a - b);
  errLatencies.sort((a, b) => a - b);
  return {
    offered: issued,
    ok,
    exhausted,
    unavailable,
    other,
    elapsedMs,
    okLatencies,
    errLatencies,
  };
}

function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? null;
}

interface BalanceRow {
  readonly load: string;
  readonly config: string;
  readonly rep: number;
  readonly offered_rps: number | null;
  readonly goodput_rps: number | null;
  readonly goodput_of_capacity: number | null;
  readonly resource_exhausted: number;
  readonly other_errors: number;
  /** shed is the RESOURCE_EXHAUSTED answers the servers gave (attempts, retries included). */
  readonly shed: Readonly<Record<string, number>>;
  /** share is each replica's fraction of the attempts it received (served + shed). */
  readonly share: Readonly<Record<string, number | null>>;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly other_load_cores: number | null;
}

async function balanceRun(
  ctx: LabContext,
  load: { name: string; factor: number },
  config: string,
  rep: number,
  durationMs: number,
): Promise<BalanceRow> {
  const names = ["r0", "r1", "weak"];
  const replicas = await Promise.all(names.map((n, i) => startReplica(n, WORKERS[i])));
  const transport = createMeshTransport({
    target: `static:///${replicas.map((x) => x.address).join(",")}`,
    logger: false,
    idempotencyKeys: false,
    // Echo has side effects: without keys the default policy does not retry it.
    ...(config === "no penalty" ? { loadPenalty: false as const } : {}),
  });
  try {
    const client = createClient(EchoService, transport);
    // Warm up: connections and EWMA state, then reset the counters.
    await openLoop([client], CAPACITY * 0.5, 1_000);
    for (const x of replicas) {
      x.served = 0;
      x.shed = 0;
    }
    ctx.lab.load.reset();
    const res = await openLoop([client], CAPACITY * load.factor, durationMs);
    const otherLoad = ctx.lab.load.cores();
    const attempts = replicas.reduce((n, x) => n + x.served + x.shed, 0);
    const seconds = res.elapsedMs / 1000;
    return {
      load: load.name,
      config,
      rep,
      offered_rps: r(res.offered / seconds, 0),
      goodput_rps: r(res.ok / seconds, 1),
      goodput_of_capacity: r(res.ok / seconds / CAPACITY, 3),
      resource_exhausted: res.exhausted,
      other_errors: res.unavailable + res.other,
      shed: Object.fromEntries(replicas.map((x) => [x.name, x.shed])),
      share: Object.fromEntries(
        replicas.map((x) => [x.name, attempts > 0 ? r((x.served + x.shed) / attempts, 4) : null]),
      ),
      p50_ms: r(percentile(res.okLatencies, 0.5), 1),
      p99_ms: r(percentile(res.okLatencies, 0.99), 1),
      other_load_cores: r(otherLoad, 2),
    };
  } finally {
    await transport.close();
    await Promise.all(replicas.map((x) => x.server.close({ graceMs: 0 })));
  }
}

async function redisAvailable(): Promise<boolean> {
  const redis = new Redis({
    host: "127.0.0.1",
    port: 6379,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function deadPort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((res) => srv.listen(0, "127.0.0.1", res));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((res) => srv.close(() => res()));
  return port;
}

interface RateRow {
  readonly limit_rps: number;
  readonly clients: number;
  readonly replicas: number;
  readonly offered_rps: number | null;
  /** admitted_per_s is the admitted calls in each whole second of the window (all replicas). */
  readonly admitted_per_s: readonly number[];
  readonly admitted_mean_rps: number | null;
  /** mean_deviation is |mean - R| / R over the window. */
  readonly mean_deviation: number | null;
  /** max_deviation is the worst second's |n - R| / R. */
  readonly max_deviation: number | null;
  readonly refused: number;
  readonly other_errors: number;
  readonly other_load_cores: number | null;
}

async function withReplicasAndClients<T>(
  stores: readonly RedisRateLimitStore[],
  rateLimit: (store: RedisRateLimitStore) => RateLimitOptions,
  clients: number,
  fn: (
    replicas: readonly Replica[],
    echo: readonly ReturnType<typeof createClient<typeof EchoService>>[],
  ) => Promise<T>,
): Promise<T> {
  const replicas = await Promise.all(
    stores.map((s, i) => startReplica(`r${i}`, undefined, rateLimit(s))),
  );
  const transports: MeshTransport[] = [];
  try {
    for (let i = 0; i < clients; i++) {
      transports.push(
        createMeshTransport({
          target: `static:///${replicas.map((x) => x.address).join(",")}`,
          logger: false,
          retry: false,
          idempotencyKeys: false,
          // The servers' answers are measured: no client-side breaker or ejection.
          circuitBreaker: false,
          outlierDetection: false,
        }),
      );
    }
    return await fn(
      replicas,
      transports.map((t) => createClient(EchoService, t)),
    );
  } finally {
    await Promise.all(transports.map((t) => t.close()));
    await Promise.all(replicas.map((x) => x.server.close({ graceMs: 0 })));
  }
}

async function rateRun(ctx: LabContext, limitRps: number, seconds: number): Promise<RateRow> {
  const prefix = `connect-mesh-bench:${process.pid}:${Date.now()}:`;
  const stores = [0, 1, 2].map(() =>
    createRedisRateLimitStore({
      connection: { host: "127.0.0.1", port: 6379 },
      keyPrefix: prefix,
      timeoutMs: 1_000,
    }),
  );
  try {
    return await withReplicasAndClients(
      stores,
      (store) => ({ limits: { ratePerSecond: limitRps, burst: Math.ceil(limitRps / 4) }, store }),
      10,
      async (replicas, echo) => {
        const offered = limitRps * 2.5;
        // Warm-up: connections, and the burst drained. It ends on a second
        // boundary, under load, so whole seconds are counted and the bucket
        // has no idle time to refill its burst before the window.
        await openLoop(echo, offered, 1_000 + (1000 - ((Date.now() + 1_000) % 1000)));
        for (const x of replicas) x.admittedBySecond.clear();
        ctx.lab.load.reset();
        const first = Math.round(Date.now() / 1000);
        const res = await openLoop(echo, offered, seconds * 1000, LIMIT_DEADLINE_MS);
        const otherLoad = ctx.lab.load.cores();
        const perSecond: number[] = [];
        for (let s = first; s < first + seconds; s++) {
          perSecond.push(replicas.reduce((n, x) => n + (x.admittedBySecond.get(s) ?? 0), 0));
        }
        // Handlers count when they run: an event-loop stall on this busy
        // machine moves admissions into the next second without losing them,
        // so the mean over the window is the figure to judge.
        const mean = perSecond.reduce((a, b) => a + b, 0) / perSecond.length;
        return {
          limit_rps: limitRps,
          clients: echo.length,
          replicas: replicas.length,
          offered_rps: r(res.offered / (res.elapsedMs / 1000), 0),
          admitted_per_s: perSecond,
          admitted_mean_rps: r(mean, 1),
          mean_deviation: r(Math.abs(mean - limitRps) / limitRps, 3),
          max_deviation: r(Math.max(...perSecond.map((n) => Math.abs(n - limitRps) / limitRps)), 3),
          refused: res.exhausted,
          other_errors: res.unavailable + res.other,
          other_load_cores: r(otherLoad, 2),
        };
      },
    );
  } finally {
    // The stores opened their connections: ioredis clients.
    const redis = stores[0]!.redis as Redis;
    const keys = await redis.keys(`${prefix}*`).catch(() => []);
    if (keys.length > 0) await redis.del(...keys).catch(() => 0);
    await Promise.all(stores.map((s) => s.close()));
  }
}

interface DownRow {
  readonly fail_mode: "open" | "closed";
  readonly calls: number;
  readonly ok: number;
  readonly unavailable: number;
  readonly other_errors: number;
  /** p99_ms is the p99 latency of every call (ok or refused): the limiter must not hang. */
  readonly p99_ms: number | null;
  readonly holds: boolean;
}

async function downRun(failMode: "open" | "closed", seconds: number): Promise<DownRow> {
  const port = await deadPort();
  const stores = [0, 1, 2].map(() =>
    createRedisRateLimitStore({ connection: { host: "127.0.0.1", port } }),
  );
  try {
    return await withReplicasAndClients(
      stores,
      (store) => ({ limits: { ratePerSecond: 10, burst: 1 }, store, failMode }),
      10,
      async (replicas, echo) => {
        const res = await openLoop(echo, 100, seconds * 1000, LIMIT_DEADLINE_MS);
        const all = [...res.okLatencies, ...res.errLatencies].sort((a, b) => a - b);
        const calls = res.ok + res.exhausted + res.unavailable + res.other;
        const handled = replicas.reduce((n, x) => n + x.served, 0);
        return {
          fail_mode: failMode,
          calls,
          ok: res.ok,
          unavailable: res.unavailable,
          other_errors: res.exhausted + res.other,
          p99_ms: r(percentile(all, 0.99), 1),
          // Open: the limiter refused nothing (the limit of 10/s, burst 1,
          // would refuse most calls). Closed: no handler ran.
          holds:
            failMode === "open"
              ? res.unavailable === 0 && res.exhausted === 0 && handled === res.ok
              : res.ok === 0 && handled === 0 && res.unavailable > 0,
        };
      },
    );
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

function median(values: readonly (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export const overloadBalance: LabSuite = {
  lab: true,
  name: "overload-balance",
  title: "Overload: load-aware balancing and shared rate limits",
  notes: [
    `- One process (counts and shares, not CPU per call): three connect-mesh servers on loopback. Each replica serves Echo with a fixed number of slots of ${SERVICE_MS} ms (r0 and r1: 4, weak: 2, so capacities ${(4 * 1000) / SERVICE_MS}, ${(4 * 1000) / SERVICE_MS} and ${(2 * 1000) / SERVICE_MS} calls/s, ${CAPACITY} in all) and sheds calls beyond them with RESOURCE_EXHAUSTED and \`grpc-retry-pushback-ms: ${PUSHBACK_MS}\`.`,
    `- One mesh client (createMeshTransport, p2c-ewma, default outlier detection and breakers; idempotency keys off, so the default retry policy does not retry the side-effecting Echo) drives open-loop load at the given multiple of the total capacity, ${DEADLINE_MS} ms deadline. \`penalty\` is the default (loadPenalty on), \`no penalty\` sets \`loadPenalty: false\`. Fresh servers and client per repetition, repetitions interleaved; tables show medians over repetitions.`,
    "- Simulated rows run the same decision code (createP2cEwmaPicker, createLoadPenalty, and the balancer's handling of a shed answer) against the same replicas in a discrete-event simulation on a fake clock (Poisson arrivals, 1 ms round trip), free of this machine's CPU noise.",
    "- share is each replica's fraction of the attempts it received (served + shed); resource_exhausted is what the client saw; shed is what each server refused.",
    "- Rate limit: 3 replicas with `rateLimit: { limits: { ratePerSecond: R, burst: R/4 }, store: createRedisRateLimitStore(...) }` (one Redis connection each, one shared key prefix), 10 clients each balancing over the 3 replicas, offered 2.5 R calls/s; admitted calls are counted per wall-clock second on the servers after a 1-2 s warm-up under the same load that drains the burst and ends on a second boundary. A burst of R/4 absorbs the gaps a CPU-starved load generator leaves (its calls come in clumps); a smaller one loses the tokens of each gap.",
    "- Redis down: the same 3 replicas with a store pointed at a port nothing listens on, 100 calls/s from 10 clients; `open` must admit every call, `closed` refuse every call with UNAVAILABLE, and the p99 of all calls shows no call waits on the limiter.",
    "- The machine is shared with other work (other_load_cores); figures from a run beside other load.",
  ],
  timing: {
    full: { warmupMs: 0, durationMs: 0, reps: 1 },
    quick: { warmupMs: 0, durationMs: 0, reps: 1 },
  },
  configs: () => [],
  budgetMs: (quick) => (quick ? 60_000 : 240_000),
  async run(ctx): Promise<LabResult> {
    const { quick, log } = ctx;
    const reps = quick ? 1 : 3;
    const durationMs = quick ? 3_000 : 8_000;
    const loads = quick
      ? [{ name: "2x capacity", factor: 2 }]
      : [
          { name: "2x capacity", factor: 2 },
          { name: "0.8x capacity", factor: 0.8 },
        ];
    const failures: string[] = [];
    const rows: BalanceRow[] = [];
    // A throwaway run first: JIT and connection code warm, so the first
    // measured configuration is not the one paying for it.
    await balanceRun(ctx, loads[0]!, "penalty", 0, quick ? 1_000 : 3_000).catch(() => undefined);
    for (let rep = 1; rep <= reps; rep++) {
      for (const load of loads) {
        // Alternate the order per repetition: drift hits both alike.
        const order = rep % 2 === 1 ? CONFIGS : [...CONFIGS].reverse();
        for (const config of order) {
          try {
            const row = await balanceRun(ctx, load, config, rep, durationMs);
            rows.push(row);
            log(
              `overload-balance: ${load.name}, ${config}, rep ${rep}: goodput ${row.goodput_rps}/s, RE ${row.resource_exhausted}, weak share ${row.share.weak}`,
            );
          } catch (e) {
            failures.push(`${load.name} ${config}: ${e instanceof Error ? e.message : String(e)}`);
          }
        }
      }
    }
    const summary = loads.flatMap((load) =>
      CONFIGS.map((config) => {
        const mine = rows.filter((x) => x.load === load.name && x.config === config);
        const share = (name: string) => median(mine.map((x) => x.share[name] ?? null));
        return {
          load: load.name,
          config,
          reps: mine.length,
          goodput_rps: median(mine.map((x) => x.goodput_rps)),
          goodput_of_capacity: median(mine.map((x) => x.goodput_of_capacity)),
          resource_exhausted: median(mine.map((x) => x.resource_exhausted)),
          weak_shed: median(mine.map((x) => x.shed.weak ?? 0)),
          share_r0: share("r0"),
          share_r1: share("r1"),
          share_weak: share("weak"),
          p99_ms: median(mine.map((x) => x.p99_ms)),
          other_load_cores: median(mine.map((x) => x.other_load_cores)),
        };
      }),
    );

    // The same decision without this machine's noise: the real picker and
    // load penalty on a fake clock, 60 simulated seconds, 3 seeds (medians).
    const simulated = loads.flatMap((load) =>
      CONFIGS.map((config) => {
        const runs = [1, 2, 3].map((seed) =>
          simulate({
            replicas: ["r0", "r1", "weak"].map((name, i) => ({ name, workers: WORKERS[i]! })),
            serviceMs: SERVICE_MS,
            pushbackMs: PUSHBACK_MS,
            rps: CAPACITY * load.factor,
            durationMs: 60_000,
            networkMs: 1,
            loadPenalty: config === "penalty" ? {} : false,
            seed,
          }),
        );
        const share = (name: string) =>
          median(runs.map((x) => (x.attempts[name] ?? 0) / (x.offered || 1)));
        return {
          load: load.name,
          config,
          goodput_rps: median(runs.map((x) => x.ok / 60)),
          goodput_of_capacity: median(runs.map((x) => x.ok / 60 / CAPACITY)),
          resource_exhausted: median(runs.map((x) => x.shed)),
          weak_shed: median(runs.map((x) => x.shedBy.weak ?? 0)),
          share_r0: share("r0"),
          share_r1: share("r1"),
          share_weak: share("weak"),
        };
      }),
    );

    const hasRedis = await redisAvailable();
    let rate: RateRow | undefined;
    const down: DownRow[] = [];
    if (hasRedis) {
      try {
        rate = await rateRun(ctx, RATE_LIMIT_RPS, quick ? 3 : 10);
        log(
          `overload-balance: shared limit ${RATE_LIMIT_RPS}/s: ${rate.admitted_per_s.join(", ")}`,
        );
      } catch (e) {
        failures.push(`rate limit: ${e instanceof Error ? e.message : String(e)}`);
      }
    } else {
      log("overload-balance: no Redis at 127.0.0.1:6379, rate limit rows skipped");
    }
    for (const mode of ["open", "closed"] as const) {
      try {
        down.push(await downRun(mode, quick ? 1 : 3));
      } catch (e) {
        failures.push(`redis down ${mode}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }

    const at2x = (config: string) =>
      summary.find((s) => s.load === "2x capacity" && s.config === config);
    const on = at2x("penalty");
    const off = at2x("no penalty");
    const simAt2x = (config: string) =>
      simulated.find((s) => s.load === "2x capacity" && s.config === config);
    const simOn = simAt2x("penalty");
    const simOff = simAt2x("no penalty");
    const goals: Goal[] = [
      goal(
        "simulated, 2x capacity: weak share and RESOURCE_EXHAUSTED, penalty vs none",
        "both lower with the penalty",
        simOn !== undefined && simOff !== undefined
          ? Number(
              (simOn.share_weak ?? 1) < (simOff.share_weak ?? 0) &&
                (simOn.resource_exhausted ?? 1) < (simOff.resource_exhausted ?? 0),
            )
          : null,
        (v) => v === 1,
        () =>
          `share ${r(simOn?.share_weak, 3)} vs ${r(simOff?.share_weak, 3)}, RE ${simOn?.resource_exhausted} vs ${simOff?.resource_exhausted}`,
      ),
      goal(
        "2x capacity: weak replica's share, penalty vs none",
        "lower with the penalty",
        on?.share_weak != null && off?.share_weak != null ? on.share_weak - off.share_weak : null,
        (v) => v < 0,
        (v) =>
          `${r(on?.share_weak, 3)} vs ${r(off?.share_weak, 3)} (${v < 0 ? "" : "+"}${r(v, 3)})`,
      ),
      goal(
        "2x capacity: RESOURCE_EXHAUSTED answers, penalty vs none",
        "fewer with the penalty",
        on?.resource_exhausted != null && off?.resource_exhausted != null
          ? on.resource_exhausted - off.resource_exhausted
          : null,
        (v) => v < 0,
        (v) => `${on?.resource_exhausted} vs ${off?.resource_exhausted} (${v < 0 ? "" : "+"}${v})`,
      ),
      hasRedis
        ? goal(
            `shared Redis limit R = ${RATE_LIMIT_RPS}/s: admitted per second`,
            "R ± 5% (mean over the window)",
            rate?.mean_deviation,
            (v) => v <= 0.05,
            (v) =>
              `mean ${rate?.admitted_mean_rps}/s (±${r(v * 100, 1)}%), worst second ±${r((rate?.max_deviation ?? 0) * 100, 1)}%`,
          )
        : { goal: "shared Redis limit", target: "R ± 5%", value: "skipped: no Redis", met: null },
      ...down.map((d) =>
        goal(
          `Redis down, failMode ${d.fail_mode}`,
          d.fail_mode === "open" ? "every call admitted" : "every call refused (UNAVAILABLE)",
          d.holds ? 1 : 0,
          (v) => v === 1,
          () => `${d.ok} ok, ${d.unavailable} unavailable of ${d.calls}, p99 ${d.p99_ms} ms`,
        ),
      ),
    ];

    const md: string[] = [];
    md.push(
      mdTable(
        [
          "load",
          "config",
          "goodput/s",
          "of capacity",
          "RESOURCE_EXHAUSTED",
          "weak shed",
          "share r0 / r1 / weak",
          "p99 ms",
          "other load",
        ],
        summary.map((s) => [
          s.load,
          s.config,
          String(r(s.goodput_rps, 1) ?? "–"),
          String(r(s.goodput_of_capacity, 3) ?? "–"),
          String(s.resource_exhausted ?? "–"),
          String(s.weak_shed ?? "–"),
          `${r(s.share_r0, 3)} / ${r(s.share_r1, 3)} / ${r(s.share_weak, 3)}`,
          String(r(s.p99_ms, 1) ?? "–"),
          String(r(s.other_load_cores, 2) ?? "–"),
        ]),
      ),
    );
    md.push("");
    md.push(
      "Simulated (the real p2c-ewma picker and load penalty on a fake clock, same replicas and load, 60 s, medians of 3 seeds):",
    );
    md.push("");
    md.push(
      mdTable(
        [
          "load",
          "config",
          "goodput/s",
          "of capacity",
          "RESOURCE_EXHAUSTED",
          "weak shed",
          "share r0 / r1 / weak",
        ],
        simulated.map((s) => [
          s.load,
          s.config,
          String(r(s.goodput_rps, 1) ?? "–"),
          String(r(s.goodput_of_capacity, 3) ?? "–"),
          String(s.resource_exhausted ?? "–"),
          String(s.weak_shed ?? "–"),
          `${r(s.share_r0, 3)} / ${r(s.share_r1, 3)} / ${r(s.share_weak, 3)}`,
        ]),
      ),
    );
    md.push("");
    if (rate !== undefined) {
      md.push(
        mdTable(
          [
            "limit",
            "clients × replicas",
            "offered/s",
            "admitted per second",
            "mean",
            "worst second",
            "refused",
            "other errors",
          ],
          [
            [
              `${rate.limit_rps}/s`,
              `${rate.clients} × ${rate.replicas}`,
              String(rate.offered_rps),
              rate.admitted_per_s.join(", "),
              String(rate.admitted_mean_rps),
              `±${r((rate.max_deviation ?? 0) * 100, 1)}%`,
              String(rate.refused),
              String(rate.other_errors),
            ],
          ],
        ),
      );
    } else {
      md.push("Rate limit rows skipped: no Redis at 127.0.0.1:6379.");
    }
    md.push("");
    md.push(
      mdTable(
        [
          "Redis down, failMode",
          "calls",
          "ok",
          "UNAVAILABLE",
          "other",
          "p99 ms (all calls)",
          "holds",
        ],
        down.map((d) => [
          d.fail_mode,
          String(d.calls),
          String(d.ok),
          String(d.unavailable),
          String(d.other_errors),
          String(d.p99_ms ?? "–"),
          d.holds ? "yes" : "**no**",
        ]),
      ),
    );
    if (rows.every((x) => (x.goodput_rps ?? 0) === 0)) failures.push("no call succeeded");
    return {
      method: {
        service_ms: SERVICE_MS,
        workers: { r0: WORKERS[0], r1: WORKERS[1], weak: WORKERS[2] },
        capacity_rps: CAPACITY,
        pushback_ms: PUSHBACK_MS,
        duration_ms: durationMs,
        reps,
        deadline_ms: DEADLINE_MS,
        redis: hasRedis,
      },
      results: { summary, rows, simulated, rate_limit: rate ?? null, redis_down: down },
      goals,
      markdown: md.join("\n"),
      failures,
    };
  },
};
