// Results: the JSON document written to bench/results/<suite>[.quick].json and
// the markdown table printed to stdout (and written to <suite>.md).

import * as os from "node:os";
import { DEFAULT_MAX_OTHER_CORES, type QuietWait, type ResultRow } from "./runner.js";
import type { ReportUnit, Scenario, Timing } from "./scenario.js";

/** SuiteGoal is a target a suite reports (never asserts), e.g. a CPU ratio. */
export interface SuiteGoal {
  readonly goal: string;
  readonly target: string;
  readonly measured: number | null;
  /** goal_met is null when the rows it needs were not measured (e.g. `--only`). */
  readonly goal_met: boolean | null;
}

/**
 * ScenarioGoals is what a measured suite adds to its Scenario to report
 * goals (kept here, beside the report that prints them, so that scenario.ts
 * imports neither the runner nor the report).
 */
export interface ScenarioGoals {
  /** goals derive the suite's reported targets from its results and ratios. */
  readonly goals?: (results: readonly ResultRow[], ratios: readonly RatioRow[]) => SuiteGoal[];
}

const UNARY_UNIT: ReportUnit = { rate: "req/s", per: "call" };

/**
 * RatioRow compares one configuration with the suite's reference row of the
 * same payload size (ratios of the medians of one interleaved run; above 1
 * means more throughput, or more CPU / memory, than the reference).
 */
export interface RatioRow {
  readonly config: string;
  readonly reference: string;
  readonly payload_bytes: number;
  readonly rps_ratio: number | null;
  readonly cpu_ratio: number | null;
  readonly client_cpu_ratio: number | null;
  readonly server_cpu_ratio: number | null;
  readonly client_peak_rss_ratio: number | null;
  readonly server_peak_rss_ratio: number | null;
}

export interface SuiteReport {
  readonly suite: string;
  readonly title: string;
  readonly date: string;
  readonly node: string;
  readonly machine: { readonly cpus: number; readonly model: string; readonly platform: string };
  readonly quick: boolean;
  readonly settings: {
    readonly warmup_ms: number;
    readonly duration_ms: number;
    readonly reps: number;
    readonly processes: string;
    readonly compression: string;
    readonly quiet_wait: string;
  };
  readonly notes: readonly string[];
  readonly wall_s: number;
  /** unit says what `rps` and `*_cpu_us_per_call` count in this suite (a unary call unless said). */
  readonly unit: ReportUnit;
  readonly results: readonly ResultRow[];
  /** ratios compare every row with `reference` (same payload), when the suite names one. */
  readonly ratios?: readonly RatioRow[];
  /** goals are the suite's reported targets (never asserted), when it has any. */
  readonly goals?: readonly SuiteGoal[];
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : Math.round((a / b) * 100) / 100;
}

/** computeRatios divides each row's medians by the reference row's of the same payload. */
export function computeRatios(
  results: readonly ResultRow[],
  referenceFor: string | ((config: string) => string),
): RatioRow[] {
  const out: RatioRow[] = [];
  for (const row of results) {
    const reference = typeof referenceFor === "string" ? referenceFor : referenceFor(row.config);
    const ref = results.find(
      (r) =>
        r.config === reference &&
        r.payload_bytes === row.payload_bytes &&
        r.servers === row.servers,
    );
    if (ref === undefined) {
      continue;
    }
    out.push({
      config: row.config,
      reference,
      payload_bytes: row.payload_bytes,
      rps_ratio: ratio(row.rps, ref.rps),
      cpu_ratio: ratio(row.cpu_us_per_call, ref.cpu_us_per_call),
      client_cpu_ratio: ratio(row.client_cpu_us_per_call, ref.client_cpu_us_per_call),
      server_cpu_ratio: ratio(row.server_cpu_us_per_call, ref.server_cpu_us_per_call),
      client_peak_rss_ratio: ratio(row.client_peak_rss_mb, ref.client_peak_rss_mb),
      server_peak_rss_ratio: ratio(row.server_peak_rss_mb, ref.server_peak_rss_mb),
    });
  }
  return out;
}

export function buildReport(
  scenario: Scenario & ScenarioGoals,
  quick: boolean,
  timing: Timing,
  quietWait: QuietWait | undefined,
  results: readonly ResultRow[],
  wallMs: number,
): SuiteReport {
  const cpus = os.cpus();
  const ratios =
    scenario.reference === undefined ? undefined : computeRatios(results, scenario.reference);
  return {
    suite: scenario.name,
    title: scenario.title,
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpus: cpus.length,
      model: cpus[0]?.model.trim() ?? "unknown",
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    },
    quick,
    settings: {
      warmup_ms: timing.warmupMs,
      duration_ms: timing.durationMs,
      reps: timing.reps,
      processes:
        "client and each server in separate processes (child_process.fork on plain node of the esbuild-bundled children, bench/lib/child-build.ts; suites with their own children fork them via tsx), fresh processes for every repetition; traffic on 127.0.0.1",
      quiet_wait:
        quietWait === undefined
          ? "off"
          : `before each run, wait up to ${quietWait.perRunMs / 1000} s (${quietWait.totalMs / 1000} s per suite) while other processes use more than ${quietWait.maxOtherCores} cores; then re-measure runs taken above that load for up to ${quietWait.remeasureMs / 1000} s`,
      compression:
        "off: Connect clients acceptCompression: [], Connect servers acceptCompression: [], grpc-js default (none)",
    },
    notes: scenario.notes,
    wall_s: Math.round(wallMs / 100) / 10,
    unit: scenario.unit ?? UNARY_UNIT,
    results,
    ...(ratios === undefined ? {} : { ratios }),
    ...(scenario.goals === undefined ? {} : { goals: scenario.goals(results, ratios ?? []) }),
  };
}

/** LOADED_CORES is the other load above which a row shows its worst repetition. */
const LOADED_CORES = DEFAULT_MAX_OTHER_CORES;

function fmt(v: number | null, digits: number): string {
  return v === null ? "–" : v.toFixed(digits);
}

function fmtInt(v: number | null): string {
  return v === null ? "–" : String(Math.round(v));
}

/** markdownTable renders the results as a GitHub table plus a header and notes. */
export function markdownTable(r: SuiteReport): string {
  const lines: string[] = [];
  lines.push(`### ${r.title}${r.quick ? " (quick)" : ""}`);
  lines.push("");
  lines.push(
    `Node ${r.node}, ${r.machine.cpus} × ${r.machine.model}; ${r.settings.reps} × ${r.settings.duration_ms / 1000} s per configuration after ${r.settings.warmup_ms / 1000} s warm-up, round-robin; ${r.date.slice(0, 10)}.`,
  );
  lines.push("");
  const u = r.unit;
  lines.push(
    `| client → server | payload | in flight | ${u.rate} (median) | ${u.rate} min–max | p50 ms | p99 ms | p99.9 ms | CPU µs/${u.per} client | CPU µs/${u.per} server | CPU µs/${u.per} total | peak RSS MB client / server | other load (cores) |`,
  );
  lines.push("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  for (const row of r.results) {
    const failed = row.reps === 0 ? " (failed)" : "";
    const errors = row.errors > 0 ? ` ⚠ ${row.errors} errors` : "";
    lines.push(
      `| ${row.config}${failed}${errors} | ${formatBytes(row.payload_bytes)} | ${row.in_flight} | ${fmtInt(row.rps)} | ${fmtInt(row.rps_min)}–${fmtInt(row.rps_max)} | ${fmt(row.p50_ms, 2)} | ${fmt(row.p99_ms, 2)} | ${fmt(row.p999_ms, 2)} | ${fmt(row.client_cpu_us_per_call, 0)} | ${fmt(row.server_cpu_us_per_call, 0)} | ${fmt(row.cpu_us_per_call, 0)} | ${fmt(row.client_peak_rss_mb, 0)} / ${fmt(row.server_peak_rss_mb, 0)} | ${fmt(row.other_load_cores, 2)}${(row.other_load_max_cores ?? 0) > LOADED_CORES ? ` (max ${fmt(row.other_load_max_cores, 2)})` : ""} |`,
    );
  }
  if (r.ratios !== undefined && r.ratios.length > 0) {
    lines.push("");
    lines.push(ratioTable(r.ratios, u));
  }
  if (r.goals !== undefined && r.goals.length > 0) {
    lines.push("");
    lines.push("| goal | target | measured | met |");
    lines.push("|---|---|--:|---|");
    for (const g of r.goals) {
      const met = g.goal_met === null ? "–" : g.goal_met ? "yes" : "no";
      lines.push(`| ${g.goal} | ${g.target} | ${fmt(g.measured, 2)} | ${met} |`);
    }
  }
  lines.push("");
  lines.push(
    "Latencies and CPU are medians over repetitions; CPU is process.cpuUsage (user + system) of the whole process over the measured window divided by the calls completed in it; peak RSS is the median over repetitions of each fresh process's maxRSS (the highest is `client_peak_rss_mb_max` / `server_peak_rss_mb_max` in the JSON).",
  );
  lines.push(
    `Other load is the CPU (in cores, median; max shown above ${LOADED_CORES}) that processes outside the benchmark used during the measured windows, from /proc/stat: figures taken while it is well above 0 are depressed. Runs taken under more than ${LOADED_CORES} cores are measured again at the end when the budget allows (${r.results.reduce((a, x) => a + x.remeasured, 0)} replaced in this run).`,
  );
  lines.push(`Compression ${r.settings.compression}.`);
  for (const n of r.notes) {
    lines.push(`${n}`);
  }
  const warned = r.results.filter((row) => row.warnings.length > 0 || row.failures.length > 0);
  if (warned.length > 0) {
    lines.push("");
    lines.push("Warnings and failures:");
    for (const row of warned) {
      for (const w of [...row.failures.map((f) => `failed: ${f}`), ...row.warnings]) {
        lines.push(`- ${row.config} ${formatBytes(row.payload_bytes)}: ${w}`);
      }
    }
  }
  lines.push("");
  return lines.join("\n");
}

function fmtRatio(v: number | null): string {
  return v === null ? "–" : `${v.toFixed(2)}x`;
}

/** ratioTable renders the ratios to the reference row, one line per row and payload. */
export function ratioTable(ratios: readonly RatioRow[], u: ReportUnit = UNARY_UNIT): string {
  const lines: string[] = [];
  const refs = [...new Set(ratios.map((x) => x.reference))];
  lines.push(
    `Ratios to ${refs.map((r) => `\`${r}\``).join(" / ")} of the same payload (medians of this run; ${u.rate} above 1 is faster, CPU and RSS above 1 cost more):`,
  );
  lines.push("");
  lines.push(
    `| client → server | payload | ${u.rate} ratio | CPU/${u.per} ratio total | client | server | peak RSS ratio client / server |`,
  );
  lines.push("|---|--:|--:|--:|--:|--:|--:|");
  for (const x of ratios) {
    lines.push(
      `| ${x.config} | ${formatBytes(x.payload_bytes)} | ${fmtRatio(x.rps_ratio)} | ${fmtRatio(x.cpu_ratio)} | ${fmtRatio(x.client_cpu_ratio)} | ${fmtRatio(x.server_cpu_ratio)} | ${fmtRatio(x.client_peak_rss_ratio)} / ${fmtRatio(x.server_peak_rss_ratio)} |`,
    );
  }
  return lines.join("\n");
}

function formatBytes(n: number): string {
  if (n >= 1024 && n % 1024 === 0) {
    return `${n / 1024} KiB`;
  }
  return `${n} B`;
}
