// The runner: for each repetition, for each configuration (round-robin so
// drift hits all configurations alike), fork fresh server and client
// processes, warm up, measure one window, and collect the numbers.

import { childFiles } from "./child-build.js";
import { spawnChild } from "./process.js";
import type {
  BenchConfig,
  ClientInit,
  ClientLoad,
  ClientStopped,
  ClientWindow,
  ProcessWindow,
  ServerInit,
  ServerReady,
} from "./protocol.js";
import type { Scenario, Timing } from "./scenario.js";
import { preloadFlags } from "./stacks/preload.js";
import { max, median, min, round } from "./stats.js";
import { otherCores, readCpuTimes, sampleOtherCores } from "./sysload.js";

/** Child start-up (tsx + library import) and connection must fit in this. */
const INIT_TIMEOUT_MS = 20_000;
const MARK_TIMEOUT_MS = 5_000;

/** RunSample is one repetition of one configuration. */
export interface RunSample {
  readonly rps: number;
  readonly calls: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly clientCpuUsPerCall: number;
  readonly serverCpuUsPerCall: number;
  readonly clientPeakRssMb: number;
  readonly serverPeakRssMb: number;
  /** otherCores is how many cores other processes on the machine used during the window. */
  readonly otherCores: number;
}

/** ResultRow is one configuration's aggregate, as stored in results/<suite>.json. */
export interface ResultRow {
  readonly config: string;
  readonly client: string;
  readonly server: string;
  readonly servers: number;
  readonly payload_bytes: number;
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
  /**
   * client_peak_rss_mb is the median over repetitions of the client process's
   * peak RSS (every repetition runs fresh processes), like the other columns;
   * the highest is client_peak_rss_mb_max. Same for the server.
   */
  readonly client_peak_rss_mb: number | null;
  readonly server_peak_rss_mb: number | null;
  readonly client_peak_rss_mb_max: number | null;
  readonly server_peak_rss_mb_max: number | null;
  /** other_load_cores is the median CPU (in cores) used by unrelated processes during the windows. */
  readonly other_load_cores: number | null;
  /** other_load_max_cores is the worst repetition's other load. */
  readonly other_load_max_cores: number | null;
  /** remeasured counts repetitions replaced in the final pass because of other load. */
  readonly remeasured: number;
  readonly errors: number;
  readonly reps: number;
  /** failures are the error messages of repetitions that produced no sample. */
  readonly failures: readonly string[];
  /** warnings are distinct process warnings the client or server printed. */
  readonly warnings: readonly string[];
  readonly samples: readonly RunSample[];
}

/** DEFAULT_MAX_OTHER_CORES is the other load above which a run counts as disturbed. */
export const DEFAULT_MAX_OTHER_CORES = 0.3;

/**
 * QuietWait holds a run back while other processes keep the machine busy,
 * within a per-run and a per-suite time budget (the run then goes ahead and
 * the load is reported).
 */
export interface QuietWait {
  readonly maxOtherCores: number;
  readonly perRunMs: number;
  readonly totalMs: number;
  /** remeasureMs bounds a final pass that repeats runs taken under more than maxOtherCores. */
  readonly remeasureMs: number;
}

export interface RunOptions {
  readonly timing: Timing;
  readonly quietWait?: QuietWait;
  /** log receives progress lines (stderr in the CLI). */
  readonly log: (line: string) => void;
}

/** runScenario measures every configuration `timing.reps` times, round-robin. */
export async function runScenario(
  scenario: Scenario,
  configs: readonly BenchConfig[],
  opts: RunOptions,
): Promise<ResultRow[]> {
  const samples = configs.map(() => [] as RunSample[]);
  const failures = configs.map(() => [] as string[]);
  const warnings = configs.map(() => new Set<string>());
  const remeasured = configs.map(() => 0);
  const q = opts.quietWait;
  let quietBudgetMs = q?.totalMs ?? 0;

  async function measure(i: number, prefix: string): Promise<RunSample | undefined> {
    const config = configs[i]!;
    if (q !== undefined && quietBudgetMs > 0) {
      const waited = await waitForQuiet(q, quietBudgetMs);
      quietBudgetMs -= waited.ms;
      if (waited.ms > 0) {
        opts.log(
          `${prefix}: waited ${(waited.ms / 1000).toFixed(1)} s for other load to drop (now ${waited.cores.toFixed(2)} cores)`,
        );
      }
    }
    try {
      const s = await runOnce(config, opts.timing, warnings[i]);
      opts.log(
        `${prefix}: ${s.rps.toFixed(0)} req/s, p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ms, ` +
          `CPU µs/call ${s.clientCpuUsPerCall.toFixed(0)}/${s.serverCpuUsPerCall.toFixed(0)}, ` +
          `other load ${Number.isNaN(s.otherCores) ? "?" : s.otherCores.toFixed(2)} cores` +
          (s.errors > 0 ? `, ${s.errors} errors (${s.firstError})` : ""),
      );
      return s;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      failures[i]?.push(msg);
      opts.log(`${prefix}: FAILED: ${msg}`);
      return undefined;
    }
  }

  const total = configs.length * opts.timing.reps;
  let n = 0;
  for (let rep = 0; rep < opts.timing.reps; rep++) {
    for (const [i, config] of configs.entries()) {
      n++;
      const s = await measure(
        i,
        `[${scenario.name} ${n}/${total}] ${describe(config)} rep ${rep + 1}`,
      );
      if (s !== undefined) {
        samples[i]?.push(s);
      }
    }
  }

  // Re-measure the samples taken while other processes were busy, worst
  // first, within a time budget; keep whichever of the two saw less load.
  if (q !== undefined && q.remeasureMs > 0) {
    const t0 = performance.now();
    const dirty = samples
      .flatMap((list, i) => list.map((s, j) => ({ i, j, cores: s.otherCores })))
      .filter((d) => d.cores > q.maxOtherCores)
      .sort((a, b) => b.cores - a.cores);
    for (const d of dirty) {
      if (performance.now() - t0 > q.remeasureMs) {
        opts.log(`[${scenario.name}] re-measure budget spent; ${dirty.length} samples were loaded`);
        break;
      }
      const prefix = `[${scenario.name} re-measure] ${describe(configs[d.i]!)} (was ${d.cores.toFixed(2)} cores)`;
      const s = await measure(d.i, prefix);
      const list = samples[d.i]!;
      if (s !== undefined && !(s.otherCores >= d.cores)) {
        list[d.j] = s;
        remeasured[d.i] = (remeasured[d.i] ?? 0) + 1;
      }
    }
  }

  return configs.map((c, i) => ({
    ...aggregate(c, samples[i] ?? [], failures[i] ?? [], [...(warnings[i] ?? [])]),
    remeasured: remeasured[i] ?? 0,
  }));
}

export function describe(c: BenchConfig): string {
  const servers = c.servers.length === 1 ? "" : ` x${c.servers.length}`;
  return `${c.label}${servers} ${c.payloadBytes} B x${c.inFlight}`;
}

async function waitForQuiet(
  q: QuietWait,
  budgetMs: number,
): Promise<{ ms: number; cores: number }> {
  const t0 = performance.now();
  const limit = Math.min(q.perRunMs, budgetMs);
  let cores = await sampleOtherCores(250);
  while (cores > q.maxOtherCores && performance.now() - t0 < limit) {
    cores = await sampleOtherCores(500);
  }
  const waited = performance.now() - t0;
  // The first 250 ms sample is the price of asking, not waiting.
  return { ms: waited > 400 ? waited : 0, cores };
}

/** runOnce forks the processes of one configuration, measures one window, and cleans up. */
async function runOnce(
  config: BenchConfig,
  timing: Timing,
  warnings: Set<string> | undefined,
): Promise<RunSample> {
  const files = await childFiles();
  const tStart = performance.now();
  // Compiled children run on plain node (lib/child-build.ts); tsx children
  // (BENCH_MESH_SOURCE=1) load their stack's libraries before tsx (stacks/preload.ts).
  const servers = config.servers.map((s, i) =>
    spawnChild(`server#${i}`, files.server, [], preloadFlags(s.stack)),
  );
  // Forked now so its start-up overlaps the servers'.
  const client = spawnChild("client", files.client, [], preloadFlags(config.client.stack));
  try {
    const load: ClientLoad = { stack: config.client.stack };
    const clientLoaded = client.call("load", load, INIT_TIMEOUT_MS);
    const ready = await Promise.all(
      config.servers.map((spec, i) => {
        const init: ServerInit = { spec };
        return servers[i]!.call<ServerReady>("init", init, INIT_TIMEOUT_MS);
      }),
    );
    const init: ClientInit = {
      spec: config.client,
      targets: ready.map((r) => `127.0.0.1:${r.port}`),
      payloadBytes: config.payloadBytes,
      inFlight: config.inFlight,
      ...(config.workload === undefined ? {} : { workload: config.workload }),
      ...(config.streamMessages === undefined ? {} : { streamMessages: config.streamMessages }),
      ...(config.ratePerSec === undefined ? {} : { ratePerSec: config.ratePerSec }),
    };
    await clientLoaded;
    await client.call("init", init, INIT_TIMEOUT_MS);
    await client.call("start");
    const tStarted = performance.now();
    await sleep(timing.warmupMs);
    const sys0 = readCpuTimes();
    const own0 = process.cpuUsage();
    await Promise.all([
      client.call("mark-begin", undefined, MARK_TIMEOUT_MS),
      ...servers.map((s) => s.call("mark-begin", undefined, MARK_TIMEOUT_MS)),
    ]);
    await sleep(timing.durationMs);
    const [cw, ...sw] = (await Promise.all([
      client.call<ClientWindow>("mark-end", undefined, MARK_TIMEOUT_MS),
      ...servers.map((s) => s.call<ProcessWindow>("mark-end", undefined, MARK_TIMEOUT_MS)),
    ])) as [ClientWindow, ...ProcessWindow[]];
    const sys1 = readCpuTimes();
    const own1 = process.cpuUsage(own0);
    for (const w of cw.warnings) {
      warnings?.add(`client: ${w}`);
    }
    for (const w of sw.flatMap((x) => x.warnings)) {
      warnings?.add(`server: ${w}`);
    }
    const tEnd = performance.now();
    const stopped = (await client.shutdown("stop", 5_000)) as ClientStopped;
    await Promise.all(servers.map((s) => s.shutdown("close", 3_000)));
    if (process.env.BENCH_DEBUG === "1") {
      console.error(
        `  setup ${(tStarted - tStart).toFixed(0)} ms, load ${(tEnd - tStarted).toFixed(0)} ms, teardown ${(performance.now() - tEnd).toFixed(0)} ms`,
      );
    }
    if (cw.calls === 0) {
      throw new Error(
        `no successful calls in the window (${cw.errors} errors: ${cw.firstError ?? stopped.firstError ?? "?"})`,
      );
    }
    const serverCpuUs = sw.reduce((acc, w) => acc + w.cpuUs, 0);
    const ownCpuUs = cw.cpuUs + serverCpuUs + own1.user + own1.system;
    return {
      rps: (cw.calls * 1000) / cw.elapsedMs,
      calls: cw.calls,
      errors: cw.errors,
      ...(cw.firstError === undefined ? {} : { firstError: cw.firstError }),
      p50: cw.latencyMs.p50,
      p99: cw.latencyMs.p99,
      p999: cw.latencyMs.p999,
      clientCpuUsPerCall: cw.cpuUs / cw.calls,
      serverCpuUsPerCall: serverCpuUs / cw.calls,
      clientPeakRssMb: cw.maxRssBytes / 2 ** 20,
      serverPeakRssMb: Math.max(...sw.map((w) => w.maxRssBytes)) / 2 ** 20,
      otherCores:
        sys0 === undefined || sys1 === undefined ? Number.NaN : otherCores(sys0, sys1, ownCpuUs),
    };
  } finally {
    await Promise.all([client.kill(), ...servers.map((s) => s.kill())]);
  }
}

function aggregate(
  c: BenchConfig,
  samples: readonly RunSample[],
  failures: readonly string[],
  warnings: readonly string[],
): ResultRow {
  const pick = (f: (s: RunSample) => number) => samples.map(f);
  return {
    config: c.label,
    client: c.client.stack,
    server: [...new Set(c.servers.map((s) => s.stack))].join("+"),
    servers: c.servers.length,
    payload_bytes: c.payloadBytes,
    in_flight: c.inFlight,
    rps: round(median(pick((s) => s.rps)), 0),
    rps_min: round(min(pick((s) => s.rps)), 0),
    rps_max: round(max(pick((s) => s.rps)), 0),
    p50_ms: round(median(pick((s) => s.p50)), 2),
    p99_ms: round(median(pick((s) => s.p99)), 2),
    p999_ms: round(median(pick((s) => s.p999)), 2),
    client_cpu_us_per_call: round(median(pick((s) => s.clientCpuUsPerCall)), 1),
    server_cpu_us_per_call: round(median(pick((s) => s.serverCpuUsPerCall)), 1),
    cpu_us_per_call: round(median(pick((s) => s.clientCpuUsPerCall + s.serverCpuUsPerCall)), 1),
    client_peak_rss_mb: round(median(pick((s) => s.clientPeakRssMb)), 1),
    server_peak_rss_mb: round(median(pick((s) => s.serverPeakRssMb)), 1),
    client_peak_rss_mb_max: round(max(pick((s) => s.clientPeakRssMb)), 1),
    server_peak_rss_mb_max: round(max(pick((s) => s.serverPeakRssMb)), 1),
    other_load_cores: round(median(pick((s) => s.otherCores)), 2),
    other_load_max_cores: round(max(pick((s) => s.otherCores)), 2),
    remeasured: 0,
    errors: samples.reduce((acc, s) => acc + s.errors, 0),
    reps: samples.length,
    failures,
    warnings,
    samples: samples.map((s) => ({
      ...s,
      rps: round(s.rps, 0) ?? 0,
      p50: round(s.p50, 3) ?? 0,
      p99: round(s.p99, 3) ?? 0,
      p999: round(s.p999, 3) ?? 0,
      clientCpuUsPerCall: round(s.clientCpuUsPerCall, 1) ?? 0,
      serverCpuUsPerCall: round(s.serverCpuUsPerCall, 1) ?? 0,
      clientPeakRssMb: round(s.clientPeakRssMb, 1) ?? 0,
      serverPeakRssMb: round(s.serverPeakRssMb, 1) ?? 0,
      otherCores: round(s.otherCores, 2) ?? Number.NaN,
    })),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
