// Benchmark CLI: `npm run bench [-- --quick] [-- --suite transport]`.
// See bench/README.md for options and method.

import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isLabSuite, runLabSuite } from "./lib/lab/lab.js";
import { ensureMeshBuild } from "./lib/mesh-library.js";
import { killAllChildrenSync } from "./lib/process.js";
import { buildReport, markdownTable } from "./lib/report.js";
import { DEFAULT_MAX_OTHER_CORES, describe, type QuietWait, runScenario } from "./lib/runner.js";
import type { Scenario, Timing } from "./lib/scenario.js";
import { SCENARIOS } from "./scenarios/index.js";

const DEFAULT_TIMING: { full: Timing; quick: Timing } = {
  full: { warmupMs: 2000, durationMs: 5000, reps: 3 },
  quick: { warmupMs: 300, durationMs: 500, reps: 1 },
};

/** Quiet wait: hold a run while other processes use more than this many cores... */
const QUIET_MAX_OTHER_CORES = DEFAULT_MAX_OTHER_CORES;
/** ...for at most this long per run. */
const QUIET_PER_RUN_MS = 10_000;

/** Per-run overhead allowance (forking, tsx, connecting, draining) for the watchdog. */
const RUN_OVERHEAD_MS = 15_000;

const USAGE = `usage: npm run bench -- [options]
  --quick              short run (CI smoke test); writes results/<suite>.quick.json
  --suite NAME[,NAME]  suites to run (default: all): ${Object.keys(SCENARIOS).join(", ")}
  --only TEXT          only configurations whose label contains TEXT (repeatable)
  --reps N             repetitions per configuration
  --warmup-ms MS       warm-up before each measured window
  --duration-ms MS     measured window per repetition
  --quiet-wait-s S     per-suite budget for waiting until other processes leave
                       the CPUs alone before each run, and again for re-measuring
                       runs taken under load (default 30 each, quick 0)
  --no-write           print only, write no result files
  --help`;

function parseCli() {
  // `npm run bench -- --quick -- --suite x` passes the inner "--" through: ignore it.
  const argv = process.argv.slice(2).filter((a) => a !== "--");
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      suite: { type: "string", multiple: true },
      only: { type: "string", multiple: true },
      reps: { type: "string" },
      "warmup-ms": { type: "string" },
      "duration-ms": { type: "string" },
      "quiet-wait-s": { type: "string" },
      "no-write": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  return values;
}

function positiveInt(name: string, v: string | undefined): number | undefined {
  if (v === undefined) {
    return undefined;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  }
  return n;
}

function timingFor(
  scenario: Scenario,
  quick: boolean,
  cli: { reps?: number; warmupMs?: number; durationMs?: number },
): Timing {
  const base = quick ? DEFAULT_TIMING.quick : DEFAULT_TIMING.full;
  const own = quick ? scenario.timing?.quick : scenario.timing?.full;
  const t = { ...base, ...own };
  return {
    warmupMs: cli.warmupMs ?? t.warmupMs,
    durationMs: cli.durationMs ?? t.durationMs,
    reps: Math.max(1, cli.reps ?? t.reps),
  };
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parseCli>;
  try {
    args = parseCli();
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const names = (args.suite ?? Object.keys(SCENARIOS)).flatMap((s) => s.split(",")).filter(Boolean);
  const unknown = names.filter((n) => SCENARIOS[n] === undefined);
  if (unknown.length > 0) {
    console.error(`unknown suite(s): ${unknown.join(", ")}\n${USAGE}`);
    return 2;
  }
  ensureMeshBuild();
  const quick = args.quick;
  const cliTiming = {
    reps: positiveInt("reps", args.reps),
    warmupMs: positiveInt("warmup-ms", args["warmup-ms"]),
    durationMs: positiveInt("duration-ms", args["duration-ms"]),
  };
  const clean = Object.fromEntries(Object.entries(cliTiming).filter(([, v]) => v !== undefined));
  const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));

  let failed = false;
  for (const name of names) {
    const scenario = SCENARIOS[name] as Scenario;
    if (isLabSuite(scenario)) {
      // Scripted suites (balancing, discovery, retries) run and report themselves.
      const ok = await runLabSuite(scenario, {
        quick,
        write: !args["no-write"],
        resultsDir,
        log: (line) => console.error(line),
      });
      failed ||= !ok;
      continue;
    }
    const timing = timingFor(scenario, quick, clean);
    const only = args.only ?? [];
    const configs = scenario
      .configs({ quick })
      .filter((c) => only.length === 0 || only.some((o) => describe(c).includes(o)));
    if (configs.length === 0) {
      console.error(`suite ${name}: no configuration matches --only ${only.join(", ")}`);
      failed = true;
      continue;
    }
    const quietS = positiveInt("quiet-wait-s", args["quiet-wait-s"]) ?? (quick ? 0 : 30);
    const quietWait: QuietWait | undefined =
      quietS > 0
        ? {
            maxOtherCores: QUIET_MAX_OTHER_CORES,
            perRunMs: QUIET_PER_RUN_MS,
            totalMs: quietS * 1000,
            remeasureMs: quietS * 1000,
          }
        : undefined;
    const budgetMs =
      configs.length * timing.reps * (timing.warmupMs + timing.durationMs + RUN_OVERHEAD_MS) +
      // quiet waits, plus the re-measure pass (its runs may overshoot by one run).
      2 * quietS * 1000 +
      (timing.warmupMs + timing.durationMs + RUN_OVERHEAD_MS) +
      30_000;
    // The run must end by itself: past its budget, kill every child and give up.
    const watchdog = setTimeout(() => {
      console.error(
        `suite ${name}: exceeded its ${Math.round(budgetMs / 1000)} s budget, aborting`,
      );
      killAllChildrenSync();
      process.exit(3);
    }, budgetMs);
    watchdog.unref();

    const est = configs.length * timing.reps * (timing.warmupMs + timing.durationMs + 700);
    console.error(
      `suite ${name}: ${configs.length} configurations × ${timing.reps} reps, warm-up ${timing.warmupMs} ms, window ${timing.durationMs} ms (≈ ${Math.round(est / 1000)} s)`,
    );
    const t0 = performance.now();
    const results = await runScenario(scenario, configs, {
      timing,
      ...(quietWait === undefined ? {} : { quietWait }),
      log: (line) => console.error(line),
    });
    clearTimeout(watchdog);
    const wallMs = performance.now() - t0;
    const report = buildReport(scenario, quick, timing, quietWait, results, wallMs);
    const md = markdownTable(report);
    console.log(md);
    console.error(`suite ${name}: done in ${(wallMs / 1000).toFixed(1)} s`);
    if (!args["no-write"]) {
      mkdirSync(resultsDir, { recursive: true });
      const base = `${resultsDir}${name}${quick ? ".quick" : ""}`;
      writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
      // The quick table goes to stdout only; results/*.quick.json is gitignored.
      if (!quick) {
        writeFileSync(`${base}.md`, md);
      }
      console.error(`wrote ${base}.json${quick ? "" : ` and ${base}.md`}`);
    }
    if (results.some((r) => r.failures.length > 0 || r.errors > 0)) {
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.once(sig, () => {
    killAllChildrenSync();
    process.exit(130);
  });
}

main().then(
  (code) => {
    killAllChildrenSync();
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    killAllChildrenSync();
    process.exitCode = 1;
  },
);
