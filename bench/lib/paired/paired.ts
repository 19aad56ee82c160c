// Runner side of the paired suites (idempotency, logging): measure the CPU
// cost of a feature as a ratio to the same stack without it, in ONE run.
// Every configuration has its own mesh server and its own client transport,
// in server and client processes that stay up for the whole run (one process
// pair per configuration, or all configurations in one pair for quick runs);
// only one configuration is loaded at a time. Repetitions are interleaved and
// the order rotates every repetition, so machine drift and position effects
// hit every configuration alike, and each repetition's ratio compares windows
// taken seconds apart.

import { fileURLToPath } from "node:url";
import type { Redis } from "ioredis";
import { mdTable } from "../lab/lab.js";
import { type ChildHandle, spawnChild } from "../process.js";
import { max, median, min } from "../stats.js";
import { otherCores, readCpuTimes } from "../sysload.js";
import type {
  ClientWindow,
  LoadStopped,
  PairedClientSpec,
  PairedServerSpec,
  ServerChildReady,
  ServerCounters,
  ServerWindow,
} from "./protocol.js";
import { redisCpuUs } from "./redis.js";

const SERVER_FILE = fileURLToPath(new URL("./server-child.ts", import.meta.url));
const CLIENT_FILE = fileURLToPath(new URL("./client-child.ts", import.meta.url));

/** Child start-up (tsx + library import) and connecting must fit in this. */
export const INIT_TIMEOUT_MS = 30_000;
const MARK_TIMEOUT_MS = 5_000;

/** Children starts paired children and kills them all in `close`. */
export class Children {
  private readonly all = new Set<ChildHandle>();
  private n = 0;

  fork(kind: "server" | "client", name = `${kind}#${this.n++}`): ChildHandle {
    const c = spawnChild(name, kind === "server" ? SERVER_FILE : CLIENT_FILE);
    this.all.add(c);
    return c;
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.all].map((c) =>
        c.call("close", undefined, 3_000).then(
          () => Promise.race([c.exited, new Promise((r) => setTimeout(r, 500))]),
          () => undefined,
        ),
      ),
    );
    await Promise.all([...this.all].map((c) => c.kill()));
    this.all.clear();
  }
}

/** PairedConfig is one measured configuration: a server variant and a client variant. */
export interface PairedConfig {
  readonly label: string;
  readonly server: Omit<PairedServerSpec, "name">;
  readonly client: Omit<PairedClientSpec, "name" | "target">;
}

/**
 * PairedTiming: warm-up before a configuration's first window (until
 * `warmupCalls` calls are done, at least `prerollMs` and at most `warmupMs`:
 * on a busy machine a fixed time may be only a few hundred calls, too few for
 * the JIT), a short pre-roll before every later one.
 */
export interface PairedTiming {
  readonly warmupCalls: number;
  readonly warmupMs: number;
  readonly prerollMs: number;
  readonly windowMs: number;
  readonly reps: number;
  readonly inFlight: number;
}

/** Bound is a configuration with the children serving it. */
interface Bound {
  readonly config: PairedConfig;
  readonly name: string;
  readonly server: ChildHandle;
  readonly client: ChildHandle;
}

/**
 * startConfigs forks and initialises the children of `configs`: one server
 * and one client process per configuration, or (`share`) one of each for
 * all. Extra server specs (the soak's replicas) may ride along in the shared
 * server process. Returns the bound configurations.
 */
export async function startConfigs(
  children: Children,
  configs: readonly PairedConfig[],
  opts: { share: boolean },
): Promise<Bound[]> {
  const names = configs.map((_, i) => `c${i}`);
  const groups = opts.share ? [configs.map((_, i) => i)] : configs.map((_, i) => [i]);
  const started = groups.map((idx) => ({
    idx,
    server: children.fork("server", `server[${idx.map((i) => configs[i]?.label).join(",")}]`),
    client: children.fork("client", `client[${idx.map((i) => configs[i]?.label).join(",")}]`),
  }));
  const bound: Bound[] = [];
  await Promise.all(
    started.map(async (g) => {
      const specs: PairedServerSpec[] = g.idx.map((i) => ({
        ...(configs[i] as PairedConfig).server,
        name: names[i] as string,
      }));
      const ready = await g.server.call<ServerChildReady>(
        "init",
        { servers: specs },
        INIT_TIMEOUT_MS,
      );
      const clients: PairedClientSpec[] = g.idx.map((i) => {
        const address = ready.servers.find((s) => s.name === names[i])?.address;
        if (address === undefined) {
          throw new Error(`server ${names[i]} did not start`);
        }
        return {
          ...(configs[i] as PairedConfig).client,
          name: names[i] as string,
          target: address,
        };
      });
      await g.client.call("init", { clients }, INIT_TIMEOUT_MS);
      for (const i of g.idx) {
        bound.push({
          config: configs[i] as PairedConfig,
          name: names[i] as string,
          server: g.server,
          client: g.client,
        });
      }
    }),
  );
  const order = configs.map((c) => c.label);
  return bound.sort((a, b) => order.indexOf(a.config.label) - order.indexOf(b.config.label));
}

/** PairedSample is one measured window of one configuration. */
export interface PairedSample {
  readonly rep: number;
  /** position is the window's place in its repetition (the order rotates). */
  readonly position: number;
  readonly rps: number;
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly replayed: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly clientCpuUsPerCall: number;
  readonly serverCpuUsPerCall: number;
  /** redisCpuUsPerCall is the Redis server's CPU (INFO cpu) over the window per call; NaN without Redis. */
  readonly redisCpuUsPerCall: number;
  readonly clientLogBytesPerCall: number;
  readonly serverLogBytesPerCall: number;
  /** serverExecutionsPerCall is handler runs per successful call (1 unless replays). */
  readonly serverExecutionsPerCall: number;
  /** events are the server's idempotency events over the window, by type. */
  readonly events: Readonly<Record<string, number>>;
  readonly clientPeakRssMb: number;
  readonly serverPeakRssMb: number;
  readonly otherCores: number;
}

export interface PairedRun {
  readonly samples: PairedSample[][];
  readonly failures: string[][];
  readonly warnings: Set<string>[];
}

function counterOf(list: readonly ServerCounters[], name: string): ServerCounters | undefined {
  return list.find((c) => c.name === name);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function measureWindow(
  b: Bound,
  timing: PairedTiming,
  warmup: boolean,
  redis: Redis | undefined,
): Promise<Omit<PairedSample, "rep" | "position">> {
  await b.client.call("start-load", { name: b.name, inFlight: timing.inFlight });
  let stopped = false;
  try {
    const t0 = performance.now();
    await sleep(timing.prerollMs);
    if (warmup) {
      while (performance.now() - t0 < timing.warmupMs) {
        const p = await b.client.call<LoadStopped>("progress");
        if (p.calls >= timing.warmupCalls) {
          break;
        }
        await sleep(100);
      }
    }
    const redis0 = redis === undefined ? undefined : await redisCpuUs(redis);
    const sys0 = readCpuTimes();
    const own0 = process.cpuUsage();
    const [, c0] = (await Promise.all([
      b.client.call("mark-begin", undefined, MARK_TIMEOUT_MS),
      b.server.call<ServerCounters[]>("mark-begin", undefined, MARK_TIMEOUT_MS),
    ])) as [unknown, ServerCounters[]];
    await sleep(timing.windowMs);
    const [cw, sw] = (await Promise.all([
      b.client.call<ClientWindow>("mark-end", undefined, MARK_TIMEOUT_MS),
      b.server.call<ServerWindow>("mark-end", undefined, MARK_TIMEOUT_MS),
    ])) as [ClientWindow, ServerWindow];
    const sys1 = readCpuTimes();
    const own1 = process.cpuUsage(own0);
    const redis1 = redis === undefined ? undefined : await redisCpuUs(redis);
    const stop = await b.client.call<LoadStopped>("stop-load", undefined, 10_000);
    stopped = true;
    if (cw.calls === 0) {
      throw new Error(
        `no successful calls in the window (${cw.errors} errors: ${cw.firstError ?? stop.firstError ?? "?"})`,
      );
    }
    const before = counterOf(c0, b.name);
    const after = counterOf(sw.counters, b.name);
    const events: Record<string, number> = {};
    for (const [k, v] of Object.entries(after?.events ?? {})) {
      const d = v - (before?.events[k] ?? 0);
      if (d !== 0) {
        events[k] = d;
      }
    }
    const redisUs =
      redis0 !== undefined && redis1 !== undefined ? Math.max(0, redis1 - redis0) : Number.NaN;
    const ownUs =
      cw.cpuUs + sw.cpuUs + own1.user + own1.system + (Number.isNaN(redisUs) ? 0 : redisUs);
    return {
      rps: (cw.calls * 1000) / cw.elapsedMs,
      calls: cw.calls,
      errors: cw.errors,
      ...(cw.firstError === undefined ? {} : { firstError: cw.firstError }),
      replayed: cw.replayed,
      p50: cw.latencyMs.p50,
      p99: cw.latencyMs.p99,
      p999: cw.latencyMs.p999,
      clientCpuUsPerCall: cw.cpuUs / cw.calls,
      serverCpuUsPerCall: sw.cpuUs / cw.calls,
      redisCpuUsPerCall: redisUs / cw.calls,
      clientLogBytesPerCall: (cw.logBytesEnd - cw.logBytesBegin) / cw.calls,
      serverLogBytesPerCall: ((after?.logBytes ?? 0) - (before?.logBytes ?? 0)) / cw.calls,
      serverExecutionsPerCall: ((after?.executions ?? 0) - (before?.executions ?? 0)) / cw.calls,
      events,
      clientPeakRssMb: cw.maxRssBytes / 2 ** 20,
      serverPeakRssMb: sw.maxRssBytes / 2 ** 20,
      otherCores:
        sys0 === undefined || sys1 === undefined ? Number.NaN : otherCores(sys0, sys1, ownUs),
    };
  } finally {
    if (!stopped) {
      await b.client.call("stop-load", undefined, 10_000).catch(() => undefined);
    }
  }
}

/**
 * runInterleaved measures every configuration `reps` times; repetition r
 * runs the configurations in an order rotated by r. The first window of each
 * configuration is preceded by `warmupMs` of load, later ones by `prerollMs`.
 */
export async function runInterleaved(
  suite: string,
  bound: readonly Bound[],
  timing: PairedTiming,
  opts: { redis?: Redis; log: (line: string) => void },
): Promise<PairedRun> {
  const n = bound.length;
  const run: PairedRun = {
    samples: bound.map(() => []),
    failures: bound.map(() => []),
    warnings: bound.map(() => new Set<string>()),
  };
  const warmed = bound.map(() => false);
  let k = 0;
  for (let rep = 0; rep < timing.reps; rep++) {
    for (let position = 0; position < n; position++) {
      const i = (position + rep) % n;
      const b = bound[i] as Bound;
      k++;
      const prefix = `[${suite} ${k}/${n * timing.reps}] ${b.config.label} rep ${rep + 1}`;
      try {
        const s = await measureWindow(b, timing, !warmed[i], opts.redis);
        warmed[i] = true;
        run.samples[i]?.push({ rep, position, ...s });
        opts.log(
          `${prefix}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ms, ` +
            `CPU µs/call ${s.clientCpuUsPerCall.toFixed(0)}/${s.serverCpuUsPerCall.toFixed(0)}` +
            (Number.isNaN(s.redisCpuUsPerCall)
              ? ""
              : ` (+redis ${s.redisCpuUsPerCall.toFixed(0)})`) +
            `, other load ${Number.isNaN(s.otherCores) ? "?" : s.otherCores.toFixed(2)} cores` +
            (s.errors > 0 ? `, ${s.errors} errors (${s.firstError})` : ""),
        );
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        run.failures[i]?.push(msg);
        opts.log(`${prefix}: FAILED: ${msg}`);
      }
    }
  }
  return run;
}

/** PairedRow is one configuration's aggregate, as stored in results/<suite>.json. */
export interface PairedRow {
  readonly config: string;
  readonly baseline: boolean;
  readonly in_flight: number;
  readonly rps: number | null;
  readonly rps_min: number | null;
  readonly rps_max: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly p999_ms: number | null;
  readonly client_cpu_us_per_call: number | null;
  readonly server_cpu_us_per_call: number | null;
  readonly cpu_us_per_call: number | null;
  /** ratio_to_baseline: median over repetitions of this rep's cpu_us_per_call / the baseline's. */
  readonly ratio_to_baseline: number | null;
  readonly ratio_min: number | null;
  readonly ratio_max: number | null;
  /** ratio_of_medians: cpu_us_per_call / the baseline's (medians over repetitions, unpaired). */
  readonly ratio_of_medians: number | null;
  readonly client_ratio_to_baseline: number | null;
  readonly server_ratio_to_baseline: number | null;
  readonly rps_ratio_to_baseline: number | null;
  /** redis_cpu_us_per_call: Redis server CPU per call (whole Redis, INFO cpu); null without Redis. */
  readonly redis_cpu_us_per_call: number | null;
  readonly client_log_bytes_per_call: number | null;
  readonly server_log_bytes_per_call: number | null;
  readonly server_executions_per_call: number | null;
  readonly replayed: number;
  readonly events_per_call: Readonly<Record<string, number | null>>;
  readonly client_peak_rss_mb: number | null;
  readonly server_peak_rss_mb: number | null;
  readonly other_load_cores: number | null;
  readonly other_load_max_cores: number | null;
  readonly errors: number;
  readonly reps: number;
  readonly failures: readonly string[];
  readonly samples: readonly PairedSample[];
}

/** rnd rounds for JSON, NaN/Infinity → null. */
export function rnd(v: number | null | undefined, digits = 1): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) {
    return null;
  }
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** aggregate turns a run into rows, with ratios paired by repetition against `baseline`. */
export function aggregate(
  bound: readonly Bound[],
  run: PairedRun,
  baseline: number,
  inFlight: number,
): PairedRow[] {
  const base = run.samples[baseline] ?? [];
  const paired = (list: readonly PairedSample[], f: (s: PairedSample) => number) =>
    list.flatMap((s) => {
      const b = base.find((x) => x.rep === s.rep);
      return b === undefined ? [] : [f(s) / f(b)];
    });
  const total = (s: PairedSample) => s.clientCpuUsPerCall + s.serverCpuUsPerCall;
  return bound.map((b, i) => {
    const list = run.samples[i] ?? [];
    const pick = (f: (s: PairedSample) => number) => list.map(f);
    const ratios = paired(list, total);
    const eventTypes = [...new Set(list.flatMap((s) => Object.keys(s.events)))].sort();
    const isBaseline = i === baseline;
    return {
      config: b.config.label,
      baseline: isBaseline,
      in_flight: inFlight,
      rps: rnd(median(pick((s) => s.rps)), 0),
      rps_min: rnd(min(pick((s) => s.rps)), 0),
      rps_max: rnd(max(pick((s) => s.rps)), 0),
      p50_ms: rnd(median(pick((s) => s.p50)), 2),
      p99_ms: rnd(median(pick((s) => s.p99)), 2),
      p999_ms: rnd(median(pick((s) => s.p999)), 2),
      client_cpu_us_per_call: rnd(median(pick((s) => s.clientCpuUsPerCall)), 1),
      server_cpu_us_per_call: rnd(median(pick((s) => s.serverCpuUsPerCall)), 1),
      cpu_us_per_call: rnd(median(pick(total)), 1),
      ratio_to_baseline: rnd(median(ratios), 3),
      ratio_min: rnd(min(ratios), 3),
      ratio_max: rnd(max(ratios), 3),
      ratio_of_medians: rnd(median(pick(total)) / median(base.map(total)), 3),
      client_ratio_to_baseline: rnd(median(paired(list, (s) => s.clientCpuUsPerCall)), 3),
      server_ratio_to_baseline: rnd(median(paired(list, (s) => s.serverCpuUsPerCall)), 3),
      rps_ratio_to_baseline: rnd(median(paired(list, (s) => s.rps)), 3),
      redis_cpu_us_per_call: rnd(median(pick((s) => s.redisCpuUsPerCall)), 1),
      client_log_bytes_per_call: rnd(median(pick((s) => s.clientLogBytesPerCall)), 1),
      server_log_bytes_per_call: rnd(median(pick((s) => s.serverLogBytesPerCall)), 1),
      server_executions_per_call: rnd(median(pick((s) => s.serverExecutionsPerCall)), 3),
      replayed: list.reduce((a, s) => a + s.replayed, 0),
      events_per_call: Object.fromEntries(
        eventTypes.map((t) => [t, rnd(median(pick((s) => (s.events[t] ?? 0) / s.calls)), 3)]),
      ),
      client_peak_rss_mb: rnd(max(pick((s) => s.clientPeakRssMb)), 1),
      server_peak_rss_mb: rnd(max(pick((s) => s.serverPeakRssMb)), 1),
      other_load_cores: rnd(median(pick((s) => s.otherCores)), 2),
      other_load_max_cores: rnd(max(pick((s) => s.otherCores)), 2),
      errors: list.reduce((a, s) => a + s.errors, 0),
      reps: list.length,
      failures: run.failures[i] ?? [],
      samples: list.map((s) => ({
        ...s,
        rps: rnd(s.rps, 0) ?? Number.NaN,
        p50: rnd(s.p50, 3) ?? Number.NaN,
        p99: rnd(s.p99, 3) ?? Number.NaN,
        p999: rnd(s.p999, 3) ?? Number.NaN,
        clientCpuUsPerCall: rnd(s.clientCpuUsPerCall, 1) ?? Number.NaN,
        serverCpuUsPerCall: rnd(s.serverCpuUsPerCall, 1) ?? Number.NaN,
        redisCpuUsPerCall: rnd(s.redisCpuUsPerCall, 1) ?? Number.NaN,
        clientLogBytesPerCall: rnd(s.clientLogBytesPerCall, 1) ?? Number.NaN,
        serverLogBytesPerCall: rnd(s.serverLogBytesPerCall, 1) ?? Number.NaN,
        serverExecutionsPerCall: rnd(s.serverExecutionsPerCall, 3) ?? Number.NaN,
        clientPeakRssMb: rnd(s.clientPeakRssMb, 1) ?? Number.NaN,
        serverPeakRssMb: rnd(s.serverPeakRssMb, 1) ?? Number.NaN,
        otherCores: rnd(s.otherCores, 2) ?? Number.NaN,
      })),
    };
  });
}

/** f formats a number for a table ("–" for null). */
export function f(v: number | null | undefined, digits = 0): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);
}

/** ratioCell shows a ratio with its min–max over repetitions. */
export function ratioCell(row: PairedRow): string {
  if (row.baseline) {
    return "1 (baseline)";
  }
  if (row.ratio_to_baseline === null) {
    return "–";
  }
  return `${f(row.ratio_to_baseline, 2)} (${f(row.ratio_min, 2)}–${f(row.ratio_max, 2)}; of medians ${f(row.ratio_of_medians, 2)})`;
}

/** otherLoadCell shows the median other load, and the worst when it is high. */
export function otherLoadCell(row: PairedRow): string {
  const worst = row.other_load_max_cores ?? 0;
  return `${f(row.other_load_cores, 2)}${worst > 0.3 ? ` (max ${f(worst, 2)})` : ""}`;
}

/**
 * cpuTable renders the CPU comparison every paired suite prints: the shared
 * columns, then the suite's own (`extra`), then the other load.
 */
export function cpuTable<R extends PairedRow>(
  rows: readonly R[],
  extra: { readonly headers: readonly string[]; readonly cells: (row: R) => string[] },
): string {
  return mdTable(
    [
      "configuration",
      "req/s (min–max)",
      "p50 ms",
      "p99 ms",
      "CPU µs/call client",
      "server",
      "total",
      "**total CPU ratio to off**: median of per-rep ratios (min–max; ratio of medians)",
      "client ratio",
      "server ratio",
      ...extra.headers,
      "other load (cores)",
    ],
    rows.map((r) => [
      `${r.config}${r.errors > 0 ? ` ⚠ ${r.errors} errors` : ""}${r.reps === 0 ? " (failed)" : ""}`,
      `${f(r.rps)} (${f(r.rps_min)}–${f(r.rps_max)})`,
      f(r.p50_ms, 2),
      f(r.p99_ms, 2),
      f(r.client_cpu_us_per_call),
      f(r.server_cpu_us_per_call),
      f(r.cpu_us_per_call),
      ratioCell(r),
      r.baseline ? "1" : f(r.client_ratio_to_baseline, 2),
      r.baseline ? "1" : f(r.server_ratio_to_baseline, 2),
      ...extra.cells(r),
      otherLoadCell(r),
    ]),
  );
}

/**
 * pairedTiming is the timing both paired suites use: counted warm-up calls
 * (a fixed time gave too few calls under load), then interleaved windows.
 */
export function pairedTiming(inFlight: number): { full: PairedTiming; quick: PairedTiming } {
  return {
    full: {
      warmupCalls: 2_000,
      warmupMs: 5_000,
      prerollMs: 300,
      windowMs: 1_500,
      reps: 8,
      inFlight,
    },
    quick: { warmupCalls: 300, warmupMs: 600, prerollMs: 100, windowMs: 500, reps: 2, inFlight },
  };
}
