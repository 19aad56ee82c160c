// Runner side of the lab suites (balancing, discovery, retries). Unlike the
// transport suite's generic closed loop, these suites script a run: start
// replica processes, drive a load generator through named phases, change
// faults at run time, kill processes, and read timestamps of transport
// events. A LabSuite is a Scenario with its own `run`; bench/run.ts hands it
// to runLabSuite, which bounds it with a watchdog, kills every child in the
// end, and writes results/<suite>.json and .md.

import { mkdirSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { fileURLToPath } from "node:url";
import type { FaultConfig } from "../../../src/index.js";
import { type ChildHandle, killAllChildrenSync, spawnChild } from "../process.js";
import type { Scenario } from "../scenario.js";
import { OtherLoadMeter } from "./procload.js";
import type {
  FirstOkAfterResult,
  LoadgenEvents,
  LoadgenInit,
  PhaseStats,
  ReplicaCounts,
  ReplicaInit,
  ReplicaReady,
  SetFaultsDone,
} from "./protocol.js";

const REPLICA_FILE = fileURLToPath(new URL("./replica-child.ts", import.meta.url));
const LOADGEN_FILE = fileURLToPath(new URL("./loadgen-child.ts", import.meta.url));

/** Child start-up (tsx + library import) must fit in this. */
const INIT_TIMEOUT_MS = 30_000;

/** Goal is a target the report compares a measurement with; goals are reported, never asserted. */
export interface Goal {
  readonly goal: string;
  readonly target: string;
  readonly value: string;
  /** met is null when the value could not be measured. */
  readonly met: boolean | null;
}

/** LabResult is what a lab suite's run returns. */
export interface LabResult {
  /** method describes the load and timing actually used (stored in the JSON). */
  readonly method: Readonly<Record<string, unknown>>;
  /** results is the suite's data, with plain field names. */
  readonly results: Readonly<Record<string, unknown>>;
  readonly goals: readonly Goal[];
  /** markdown renders the tables (the report adds the header, goals and notes). */
  readonly markdown: string;
  /** failures are hard errors (a child crashed, no call succeeded); the exit code turns 1. */
  readonly failures: readonly string[];
  /** skipped says why the suite did not run (a missing service); not a failure. */
  readonly skipped?: string;
}

export interface LabContext {
  readonly quick: boolean;
  readonly log: (line: string) => void;
  readonly lab: Lab;
}

/** LabSuite is a scripted suite; `configs()` of the Scenario part returns []. */
export interface LabSuite extends Scenario {
  readonly lab: true;
  /** budgetMs bounds the whole run (watchdog). */
  budgetMs(quick: boolean): number;
  run(ctx: LabContext): Promise<LabResult>;
}

export function isLabSuite(s: Scenario): s is LabSuite {
  return (s as Partial<LabSuite>).lab === true;
}

/** ReplicaGroup is one replica child process (one or more mesh servers). */
export class ReplicaGroup {
  constructor(
    readonly child: ChildHandle,
    readonly ready: ReplicaReady,
  ) {}

  get addresses(): string[] {
    return this.ready.replicas.map((r) => r.address);
  }

  setFaults(config: FaultConfig, names?: readonly string[]): Promise<SetFaultsDone> {
    return this.child.call<SetFaultsDone>(
      "set-faults",
      names === undefined ? { config } : { config, names },
    );
  }

  counts(): Promise<ReplicaCounts> {
    return this.child.call<ReplicaCounts>("counts");
  }

  kill(): Promise<void> {
    return this.child.kill();
  }
}

/** Loadgen is one load generator child. */
export class Loadgen {
  constructor(
    readonly child: ChildHandle,
    /** tag is the client's `x-bench-client` value. */
    readonly tag: string,
  ) {}

  start(): Promise<void> {
    return this.child.call("start");
  }

  /** phase ends the current phase (returning its stats so far) and starts `name`. */
  phase(name: string): Promise<PhaseStats> {
    return this.child.call<PhaseStats>("phase", { name });
  }

  /** drain stops the load, waits for calls in flight, and returns the final stats of every phase. */
  drain(waitMs = 5_000): Promise<PhaseStats[]> {
    return this.child.call<PhaseStats[]>("drain", { waitMs }, waitMs + 10_000);
  }

  events(): Promise<LoadgenEvents> {
    return this.child.call<LoadgenEvents>("events");
  }

  firstOkAfter(atMs: number, waitMs = 0): Promise<FirstOkAfterResult> {
    return this.child.call<FirstOkAfterResult>("first-ok-after", { atMs, waitMs }, waitMs + 10_000);
  }

  async stop(): Promise<void> {
    await this.child.shutdown("stop", 5_000).catch(() => undefined);
  }
}

/** Lab starts children for one suite run and kills them all in `close`. */
export class Lab {
  private readonly children = new Set<ChildHandle>();
  private n = 0;
  readonly load = new OtherLoadMeter();

  /** forkReplica forks a replica child (start-up overlaps other work); `initReplica` configures it. */
  forkReplica(name = `replicas#${this.n++}`): ChildHandle {
    const c = spawnChild(name, REPLICA_FILE);
    this.children.add(c);
    return c;
  }

  async initReplica(child: ChildHandle, init: ReplicaInit): Promise<ReplicaGroup> {
    const ready = await child.call<ReplicaReady>("init", init, INIT_TIMEOUT_MS);
    return new ReplicaGroup(child, ready);
  }

  async replicas(init: ReplicaInit): Promise<ReplicaGroup> {
    return this.initReplica(this.forkReplica(), init);
  }

  forkLoadgen(name = `loadgen#${this.n++}`): ChildHandle {
    const c = spawnChild(name, LOADGEN_FILE);
    this.children.add(c);
    return c;
  }

  async initLoadgen(child: ChildHandle, init: LoadgenInit): Promise<Loadgen> {
    await child.call("init", init, INIT_TIMEOUT_MS);
    return new Loadgen(child, init.tag);
  }

  async loadgen(init: LoadgenInit): Promise<Loadgen> {
    return this.initLoadgen(this.forkLoadgen(), init);
  }

  async close(): Promise<void> {
    await Promise.all([...this.children].map((c) => c.kill()));
    this.children.clear();
  }
}

/** LabReport is the JSON document written to results/<suite>[.quick].json. */
export interface LabReport {
  readonly suite: string;
  readonly title: string;
  readonly date: string;
  readonly node: string;
  readonly machine: { readonly cpus: number; readonly model: string; readonly platform: string };
  readonly quick: boolean;
  readonly wall_s: number;
  readonly skipped?: string;
  readonly method: Readonly<Record<string, unknown>>;
  readonly goals: readonly Goal[];
  readonly notes: readonly string[];
  readonly failures: readonly string[];
  readonly results: Readonly<Record<string, unknown>>;
}

/**
 * runLabSuite runs a lab suite under a watchdog, prints and writes its report,
 * and returns false on hard failures.
 */
export async function runLabSuite(
  suite: LabSuite,
  opts: { quick: boolean; write: boolean; resultsDir: string; log: (line: string) => void },
): Promise<boolean> {
  const budgetMs = suite.budgetMs(opts.quick);
  const watchdog = setTimeout(() => {
    opts.log(`suite ${suite.name}: exceeded its ${Math.round(budgetMs / 1000)} s budget, aborting`);
    killAllChildrenSync();
    process.exit(3);
  }, budgetMs);
  watchdog.unref();
  opts.log(`suite ${suite.name}: scripted run (budget ${Math.round(budgetMs / 1000)} s)`);
  const t0 = performance.now();
  const lab = new Lab();
  let result: LabResult;
  try {
    result = await suite.run({ quick: opts.quick, log: opts.log, lab });
  } catch (err) {
    const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
    result = {
      method: {},
      results: {},
      goals: [],
      markdown: "",
      failures: [`run failed: ${msg}`],
    };
  } finally {
    await lab.close();
    clearTimeout(watchdog);
  }
  const wallMs = performance.now() - t0;
  const cpus = os.cpus();
  const report: LabReport = {
    suite: suite.name,
    title: suite.title,
    date: new Date().toISOString(),
    node: process.version,
    machine: {
      cpus: cpus.length,
      model: cpus[0]?.model.trim() ?? "unknown",
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    },
    quick: opts.quick,
    wall_s: Math.round(wallMs / 100) / 10,
    ...(result.skipped === undefined ? {} : { skipped: result.skipped }),
    method: result.method,
    goals: result.goals,
    notes: suite.notes,
    failures: result.failures,
    results: result.results,
  };
  const md = labMarkdown(report, result.markdown);
  console.log(md);
  opts.log(`suite ${suite.name}: done in ${(wallMs / 1000).toFixed(1)} s`);
  if (opts.write && result.skipped === undefined) {
    mkdirSync(opts.resultsDir, { recursive: true });
    const base = `${opts.resultsDir}${suite.name}${opts.quick ? ".quick" : ""}`;
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    if (!opts.quick) {
      writeFileSync(`${base}.md`, md);
    }
    opts.log(`wrote ${base}.json${opts.quick ? "" : ` and ${base}.md`}`);
  }
  return result.failures.length === 0;
}

function labMarkdown(r: LabReport, body: string): string {
  const lines: string[] = [];
  lines.push(`### ${r.title}${r.quick ? " (quick)" : ""}`);
  lines.push("");
  if (r.skipped !== undefined) {
    lines.push(`**Skipped:** ${r.skipped}`);
    lines.push("");
    return lines.join("\n");
  }
  lines.push(
    `Node ${r.node}, ${r.machine.cpus} × ${r.machine.model}; ${r.date.slice(0, 10)}; wall time ${r.wall_s} s.`,
  );
  lines.push("");
  lines.push(body.trimEnd());
  lines.push("");
  if (r.goals.length > 0) {
    lines.push("Goals (reported, not asserted):");
    lines.push("");
    lines.push(
      mdTable(
        ["goal", "target", "measured", "met"],
        r.goals.map((g) => [
          g.goal,
          g.target,
          g.value,
          g.met === null ? "–" : g.met ? "yes" : "**no**",
        ]),
      ),
    );
    lines.push("");
  }
  for (const n of r.notes) {
    lines.push(n);
  }
  if (r.failures.length > 0) {
    lines.push("");
    lines.push("Failures:");
    for (const f of r.failures) {
      lines.push(`- ${f.split("\n")[0]}`);
    }
  }
  lines.push("");
  return lines.join("\n");
}

/** mdTable renders a GitHub table; numeric-looking columns are right-aligned. */
export function mdTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const numeric = headers.map((_, i) =>
    rows.every((r) => /^[\s\d.,%x×–≤≥<>+-]*$/.test(r[i] ?? "")),
  );
  const out = [
    `| ${headers.join(" | ")} |`,
    `|${numeric.map((n) => (n ? "--:" : "---")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
  return out.join("\n");
}

/** fmt formats a number (or "–" for null/NaN) with `digits` decimals. */
export function fmt(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);
}

/** r rounds for JSON (null for NaN). */
export function r(v: number | null | undefined, digits = 2): number | null {
  if (v === null || v === undefined || !Number.isFinite(v)) {
    return null;
  }
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** goal builds a Goal from a measured value and a comparison. */
export function goal(
  name: string,
  target: string,
  value: number | null | undefined,
  ok: (v: number) => boolean,
  format: (v: number) => string,
): Goal {
  if (value === null || value === undefined || !Number.isFinite(value)) {
    return { goal: name, target, value: "–", met: null };
  }
  return { goal: name, target, value: format(value), met: ok(value) };
}
