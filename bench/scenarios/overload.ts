// Suite "overload" (issue 17 §1, §2): one server with a capacity of ~C
// calls/s, offered 3x C with open-loop (Poisson) arrivals, with the adaptive
// concurrency limit (gradient2, defaults) and without any limit (today's
// default). Two capacities, each server in its own process: an injected
// service time behind a worker queue, and a CPU-bound handler. Then the load
// drops to 0.5x C (recovery), and a run with critical and sheddable calls
// mixed shows priority shedding.

import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import { fmt, type Goal, goal, type LabResult, type LabSuite, mdTable, r } from "../lib/lab/lab.js";
import {
  type CallRecord,
  closedLoopRps,
  type PhaseStats,
  phaseStats,
  runOpenLoop,
} from "../lib/overload/open-loop.js";
import type { LimitPoint, OverloadServerInit } from "../lib/overload/server-child.js";
import { type ChildHandle, spawnChild } from "../lib/process.js";

const SERVER_FILE = fileURLToPath(new URL("../lib/overload/server-child.ts", import.meta.url));
const CALL_TIMEOUT_MS = 2_000;
const OVERLOAD_FACTOR = 3;
const RECOVERY_FACTOR = 0.5;
const CRITICAL_SHARE = 0.2;

interface Variant {
  readonly name: string;
  readonly init: Omit<OverloadServerInit, "adaptive">;
  /**
   * probeConcurrency callers measure the capacity C in a closed loop (enough
   * to fill it, no more); 0: C is the worker queue's own, workers / service time.
   */
  readonly probeConcurrency: number;
}

const VARIANTS: readonly Variant[] = [
  {
    name: "injected service time (4 workers x 200 ms)",
    init: { variant: "sleep", workers: 4, serviceMs: 200, cpuMs: 0 },
    probeConcurrency: 0,
  },
  {
    name: "CPU-bound handler (20 ms CPU per call)",
    init: { variant: "cpu", workers: 0, serviceMs: 0, cpuMs: 20 },
    probeConcurrency: 2,
  },
];

interface Timings {
  readonly probeMs: number;
  readonly unloadedMs: number;
  readonly overloadMs: number;
  readonly recoveryMs: number;
  /** settleMs is skipped at the start of the overload phase (the limit is still adapting). */
  readonly settleMs: number;
}

// The unloaded phase must hold the long RTT's warm-up (10 windows of >= 10
// calls: 10 s at 0.5x C = 10 calls/s), or the long RTT would be learned under
// overload. C is kept small: on a 2-core host shared with other work the
// client and server processes themselves must keep up with 3x C, or their
// own queues would be measured instead of the server's.
const FULL: Timings = {
  probeMs: 3_000,
  unloadedMs: 11_000,
  overloadMs: 10_000,
  recoveryMs: 5_000,
  settleMs: 2_000,
};
// Quick (CI smoke): short phases; the long RTT's warm-up is not complete, so
// its figures say less than a full run's.
const QUICK: Timings = {
  probeMs: 1_500,
  unloadedMs: 5_000,
  overloadMs: 3_000,
  recoveryMs: 2_000,
  settleMs: 1_000,
};

async function startServer(
  init: OverloadServerInit,
): Promise<{ child: ChildHandle; address: string }> {
  const child = spawnChild(`overload-${init.variant}`, SERVER_FILE);
  const ready = await child.call<{ address: string }>("init", init, 30_000);
  return { child, address: ready.address };
}

async function stopServer(child: ChildHandle): Promise<void> {
  await child.shutdown("stop", 3_000).catch(() => undefined);
}

interface RunResult {
  readonly unloaded: PhaseStats;
  readonly overload: PhaseStats;
  readonly recovery: PhaseStats;
  /** reopen_s is the time from the drop to 0.5x C until the last refused call (0: none refused). */
  readonly reopen_s: number | null;
  readonly limits: readonly LimitPoint[];
  readonly starts: Record<string, number>;
}

function limitAt(limits: readonly LimitPoint[], atMs: number): number | null {
  let v: number | null = null;
  for (const p of limits) {
    if (p.atMs <= atMs) v = p.limit;
  }
  return v;
}

async function runOnce(
  variant: Variant,
  adaptive: boolean,
  capacity: number,
  t: Timings,
): Promise<RunResult> {
  const { child, address } = await startServer({
    ...variant.init,
    ...(adaptive ? { adaptive: { algorithm: "gradient2" } } : {}),
  });
  try {
    const { records, starts } = await runOpenLoop(
      address,
      [
        { name: "unloaded", ratePerS: RECOVERY_FACTOR * capacity, durationMs: t.unloadedMs },
        { name: "overload", ratePerS: OVERLOAD_FACTOR * capacity, durationMs: t.overloadMs },
        { name: "recovery", ratePerS: RECOVERY_FACTOR * capacity, durationMs: t.recoveryMs },
      ],
      CALL_TIMEOUT_MS,
    );
    const { limits } = await child.call<{ limits: LimitPoint[] }>("limits");
    const s = (name: string, from: number, len: number) =>
      phaseStats(records, name, from, from + len);
    const u = starts.unloaded ?? 0;
    const o = starts.overload ?? 0;
    const rec = starts.recovery ?? 0;
    const refusedInRecovery = records.filter(
      (c) => c.phase === "recovery" && c.code === Code.ResourceExhausted,
    );
    const lastRefused = Math.max(rec, ...refusedInRecovery.map((c) => c.atMs));
    return {
      unloaded: s(
        "unloaded",
        u + Math.min(1_000, t.unloadedMs / 4),
        t.unloadedMs - Math.min(1_000, t.unloadedMs / 4),
      ),
      overload: s("overload", o + t.settleMs, t.overloadMs - t.settleMs),
      recovery: s("recovery", rec, t.recoveryMs),
      reopen_s: adaptive ? (lastRefused - rec) / 1000 : null,
      limits,
      starts,
    };
  } finally {
    await stopServer(child);
  }
}

interface PriorityResult {
  readonly critical: PhaseStats;
  readonly sheddable: PhaseStats;
  readonly critical_success: number;
  readonly sheddable_share_of_refusals: number;
}

async function runPriority(
  variant: Variant,
  capacity: number,
  t: Timings,
): Promise<PriorityResult> {
  const { child, address } = await startServer({
    ...variant.init,
    adaptive: { algorithm: "gradient2" },
  });
  try {
    const { records, starts } = await runOpenLoop(
      address,
      [
        {
          name: "unloaded",
          ratePerS: RECOVERY_FACTOR * capacity,
          durationMs: t.unloadedMs,
          criticalShare: CRITICAL_SHARE,
        },
        {
          name: "overload",
          ratePerS: OVERLOAD_FACTOR * capacity,
          durationMs: t.overloadMs,
          criticalShare: CRITICAL_SHARE,
        },
      ],
      CALL_TIMEOUT_MS,
    );
    const o = (starts.overload ?? 0) + t.settleMs;
    const to = (starts.overload ?? 0) + t.overloadMs;
    const critical = phaseStats(records, "overload", o, to, (c: CallRecord) => c.critical);
    const sheddable = phaseStats(records, "overload", o, to, (c: CallRecord) => !c.critical);
    const refusals = critical.refused + sheddable.refused;
    return {
      critical,
      sheddable,
      critical_success: critical.calls === 0 ? Number.NaN : critical.ok / critical.calls,
      sheddable_share_of_refusals: refusals === 0 ? Number.NaN : sheddable.refused / refusals,
    };
  } finally {
    await stopServer(child);
  }
}

/**
 * runFailures are the signs of a broken run (the exit code turns 1), as
 * opposed to overload doing what it does: calls at 0.5x C must succeed, no
 * call may fail with anything but RESOURCE_EXHAUSTED (the limit) or
 * DEADLINE_EXCEEDED (a queue past the deadline), only the limit may refuse,
 * and with the limit some calls must succeed at 3x. Without a limit, none
 * succeeding at 3x is the expected collapse, not a failure.
 */
function runFailures(label: string, mode: "adaptive" | "none", res: RunResult): string[] {
  const out: string[] = [];
  if (res.unloaded.ok === 0) out.push(`${label}: no call succeeded at 0.5x C`);
  for (const s of [res.unloaded, res.overload, res.recovery]) {
    if (s.other_errors > 0) {
      out.push(
        `${label}: ${s.other_errors} calls failed with other errors in the ${s.phase} phase`,
      );
    }
    if (mode === "none" && s.refused > 0) {
      out.push(`${label}: ${s.refused} calls refused without a limit in the ${s.phase} phase`);
    }
  }
  if (mode === "adaptive" && res.overload.ok === 0) out.push(`${label}: no call succeeded at 3x`);
  return out;
}

function statsRow(s: PhaseStats): Record<string, number | null> {
  return {
    offered_rps: r(s.offered_rps, 1),
    goodput_rps: r(s.goodput_rps, 1),
    refused_rps: r(s.refused_rps, 1),
    timed_out: s.timed_out,
    other_errors: s.other_errors,
    p50_ms: r(s.p50_ms, 1),
    p99_ms: r(s.p99_ms, 1),
  };
}

export const overload: LabSuite = {
  name: "overload",
  title: "Overload: adaptive concurrency limit (gradient2) and priority shedding at 3x capacity",
  lab: true,
  notes: [
    "- One mesh server in its own process serving `Echo` with a capacity of ~C calls/s; the load generator (one mesh transport, no retries, breakers or ejections) sends open-loop Poisson arrivals, each call with a 2 s deadline.",
    "- C: the worker queue's own capacity (4 workers / 200 ms = 20 calls/s); for the CPU-bound handler, measured first with a closed loop of 2 callers (just filling it), no limit, after a warm-up of half its length.",
    "- Phases: 0.5x C (unloaded; its p99 is the reference), 3x C, 0.5x C (recovery). Goodput and p99 of admitted calls are over the 3x phase minus its first seconds (settle), counting successful calls only; refused calls are RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`.",
    '- adaptive = `concurrencyLimit: { adaptive: "gradient2" }` with every default (initial 20, min 1, max 1000, 100 ms windows of >= 10 calls, tolerance 1.5, smoothing 0.2 when the limit grows, 1 when it falls); none = no limit (today\'s default).',
    "- Recovery: time from the drop to 0.5x C until the last refused call (the limit has re-opened after it).",
    "- Priority: 20% of calls `x-mesh-criticality: critical`, 80% `sheddable` (default shares: sheddable calls only while under half the limit is in flight; a critical call that finds the limit full waits up to 200 ms for the next free slot, `criticalQueueMs`).",
    "- Without a limit, no call succeeding at 3x is the expected collapse: reported (goodput 0, p99 –), not a failure. The exit code turns 1 on a broken run: a child crash or IPC timeout, no call succeeding at 0.5x C, errors other than RESOURCE_EXHAUSTED / DEADLINE_EXCEEDED, refusals without a limit, or no success with the limit.",
    "- Quick mode (CI smoke) runs the injected-service-time variant only, adaptive and priority runs only.",
    "- The host is shared with other work (see `other load` in the JSON); figures move with it.",
  ],
  timing: {
    full: { warmupMs: 0, durationMs: 0, reps: 1 },
    quick: { warmupMs: 0, durationMs: 0, reps: 1 },
  },
  configs: () => [],
  budgetMs: (quick) => (quick ? 90_000 : 360_000),
  async run(ctx): Promise<LabResult> {
    const t = ctx.quick ? QUICK : FULL;
    const variants = ctx.quick ? VARIANTS.slice(0, 1) : VARIANTS;
    const failures: string[] = [];
    const collapses: string[] = [];
    const goals: Goal[] = [];
    const rows: Record<string, unknown>[] = [];
    const priorities: Record<string, unknown>[] = [];
    const md: string[][] = [];
    const pmd: string[][] = [];
    ctx.lab.load.reset();
    for (const v of variants) {
      let capacity = (v.init.workers * 1_000) / Math.max(1, v.init.serviceMs);
      if (v.probeConcurrency > 0) {
        const probe = await startServer(v.init);
        try {
          capacity = await closedLoopRps(
            probe.address,
            v.probeConcurrency,
            t.probeMs,
            t.probeMs / 2,
          );
        } finally {
          await stopServer(probe.child);
        }
      }
      ctx.log(`overload: ${v.name}: capacity C = ${capacity.toFixed(0)} calls/s`);
      // At least ~110 calls at 0.5x C before the burst (the long RTT's warm-up), at most 20 s.
      const vt: Timings = ctx.quick
        ? t
        : {
            ...t,
            unloadedMs: Math.min(
              20_000,
              Math.max(t.unloadedMs, (110 / (RECOVERY_FACTOR * Math.max(1, capacity))) * 1_000),
            ),
          };
      if (!(capacity > 0)) {
        failures.push(`${v.name}: capacity probe got no call through`);
        continue;
      }
      const results: Record<string, RunResult> = {};
      // Quick (CI smoke) runs only the adaptive limit and the priority run, to stay well under 60 s.
      for (const mode of ctx.quick ? (["adaptive"] as const) : (["adaptive", "none"] as const)) {
        const res = await runOnce(v, mode === "adaptive", capacity, vt);
        results[mode] = res;
        failures.push(...runFailures(`${v.name} ${mode}`, mode, res));
        if (mode === "none" && res.overload.ok === 0) {
          collapses.push(
            `${v.name}, no limit: no call succeeded at 3x (${res.overload.timed_out} timed out): the collapse the limit exists to prevent, reported, not a failure`,
          );
        }
        const ratioP99 =
          res.overload.p99_ms !== null && res.unloaded.p99_ms !== null
            ? res.overload.p99_ms / res.unloaded.p99_ms
            : null;
        const limitsDuring = res.limits.filter(
          (p) => p.atMs >= (res.starts.overload ?? 0) && p.atMs < (res.starts.recovery ?? 0),
        );
        rows.push({
          config: `${v.init.variant} ${mode}`,
          variant: v.name,
          limit: mode,
          capacity_rps: r(capacity, 1),
          unloaded: statsRow(res.unloaded),
          overload: statsRow(res.overload),
          recovery: statsRow(res.recovery),
          goodput_x_capacity: r(res.overload.goodput_rps / capacity, 3),
          p99_x_unloaded: r(ratioP99, 2),
          reopen_s: r(res.reopen_s, 2),
          limit_before: limitAt(res.limits, res.starts.overload ?? 0),
          limit_min_at_3x:
            limitsDuring.length === 0 ? null : Math.min(...limitsDuring.map((p) => p.limit)),
          limit_end_of_3x: limitAt(res.limits, res.starts.recovery ?? 0),
          limit_end: res.limits.at(-1)?.limit ?? null,
          limit_changes: res.limits.length,
        });
        md.push([
          v.init.variant === "sleep" ? "injected service time" : "CPU-bound",
          mode,
          fmt(capacity, 0),
          fmt(res.overload.offered_rps, 0),
          `${fmt(res.overload.goodput_rps, 0)} (${fmt(res.overload.goodput_rps / capacity, 2)}x)`,
          fmt(res.overload.refused_rps, 0),
          String(res.overload.timed_out),
          fmt(res.unloaded.p99_ms, 1),
          res.overload.p99_ms === null
            ? "–"
            : `${fmt(res.overload.p99_ms, 1)} (${fmt(ratioP99, 2)}x)`,
          mode === "adaptive"
            ? `${limitAt(res.limits, res.starts.overload ?? 0) ?? "–"} → ${limitAt(res.limits, res.starts.recovery ?? 0) ?? "–"}`
            : "–",
          res.reopen_s === null ? "–" : `${fmt(res.reopen_s, 2)} s`,
        ]);
        ctx.log(
          `overload: ${v.name} ${mode}: goodput ${res.overload.goodput_rps.toFixed(0)}/s, p99 ${fmt(res.overload.p99_ms)} ms (unloaded ${fmt(res.unloaded.p99_ms)} ms)`,
        );
      }
      const a = results.adaptive;
      if (a !== undefined) {
        goals.push(
          goal(
            `${v.init.variant}: adaptive goodput at 3x`,
            "≥ 0.9x C",
            a.overload.goodput_rps / capacity,
            (x) => x >= 0.9,
            (x) => `${x.toFixed(2)}x C`,
          ),
          goal(
            `${v.init.variant}: adaptive p99 of admitted calls at 3x`,
            "≤ 2x unloaded p99",
            a.overload.p99_ms !== null && a.unloaded.p99_ms !== null
              ? a.overload.p99_ms / a.unloaded.p99_ms
              : null,
            (x) => x <= 2,
            (x) => `${x.toFixed(2)}x`,
          ),
          goal(
            `${v.init.variant}: limit re-opens at 0.5x`,
            "≤ 5 s",
            a.reopen_s,
            (x) => x <= 5,
            (x) => `${x.toFixed(2)} s`,
          ),
        );
      }
      const p = await runPriority(v, capacity, vt);
      for (const s of [p.critical, p.sheddable]) {
        if (s.other_errors > 0) {
          failures.push(
            `${v.name} priority: ${s.other_errors} calls failed with other errors at 3x`,
          );
        }
      }
      if (p.critical.ok === 0)
        failures.push(`${v.name} priority: no critical call succeeded at 3x`);
      priorities.push({
        config: `${v.init.variant} priority`,
        variant: v.name,
        critical_share: CRITICAL_SHARE,
        critical: statsRow(p.critical),
        sheddable: statsRow(p.sheddable),
        critical_success: r(p.critical_success, 4),
        sheddable_share_of_refusals: r(p.sheddable_share_of_refusals, 4),
      });
      pmd.push([
        v.init.variant === "sleep" ? "injected service time" : "CPU-bound",
        `${fmt(p.critical.offered_rps, 0)} / ${fmt(p.sheddable.offered_rps, 0)}`,
        `${fmt(p.critical_success * 100, 2)}%`,
        `${fmt((p.sheddable.ok / Math.max(1, p.sheddable.calls)) * 100, 1)}%`,
        `${p.critical.refused} / ${p.sheddable.refused}`,
        `${fmt(p.critical.p99_ms, 1)}`,
      ]);
      goals.push(
        goal(
          `${v.init.variant}: critical success at 3x`,
          "≥ 99%",
          p.critical_success,
          (x) => x >= 0.99,
          (x) => `${(x * 100).toFixed(2)}%`,
        ),
        goal(
          `${v.init.variant}: refusals borne by sheddable calls`,
          "≥ 90%",
          p.sheddable_share_of_refusals,
          (x) => x >= 0.9,
          (x) => `${(x * 100).toFixed(1)}%`,
        ),
      );
    }
    const otherLoad = ctx.lab.load.cores();
    const markdown = [
      mdTable(
        [
          "capacity",
          "limit",
          "C calls/s",
          "offered/s",
          "goodput/s",
          "refused/s",
          "timed out",
          "unloaded p99 ms",
          "p99 at 3x ms",
          "limit 0.5x → 3x",
          "re-open",
        ],
        md,
      ),
      "",
      "Priority at 3x (adaptive limit):",
      "",
      mdTable(
        [
          "capacity",
          "offered/s critical / sheddable",
          "critical success",
          "sheddable success",
          "refused critical / sheddable",
          "critical p99 ms",
        ],
        pmd,
      ),
      "",
      `Other load on the host during the suite: ${fmt(otherLoad, 2)} cores.`,
      ...(collapses.length === 0 ? [] : ["", ...collapses.map((c) => `- ${c}.`)]),
    ].join("\n");
    return {
      method: {
        call_timeout_ms: CALL_TIMEOUT_MS,
        overload_factor: OVERLOAD_FACTOR,
        recovery_factor: RECOVERY_FACTOR,
        critical_share: CRITICAL_SHARE,
        phases_ms: t,
        arrivals: "open loop, Poisson",
        other_load_cores: r(otherLoad, 2),
      },
      results: { rows, priority: priorities, expected_collapses: collapses },
      goals,
      markdown,
      failures,
    };
  },
};
