// Suite "balancing": one slow replica among three (service time 2 ms, one at
// 20 ms), round-robin against p2c-ewma, with an all-healthy baseline; and one
// replica failing half its calls with UNAVAILABLE (success rate with retries,
// time until the outlier detector ejects it).

import { Code } from "@connectrpc/connect";
import type { FaultConfig } from "../../src/index.js";
import {
  fmt,
  type Goal,
  goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  type Loadgen,
  mdTable,
  r,
  sleep,
} from "../lib/lab/lab.js";
import { measureWindow, type Window } from "../lib/lab/measure.js";
import type { LoadShape } from "../lib/lab/protocol.js";

const NAMES = ["r0", "r1", "r2"] as const;
const SLOW = "r2";

/**
 * Scale is one way to make a replica 10x slower. "64 in flight" (the goal
 * rows) is the brief's closed loop of 64 callers; its service times (100 ms,
 * the slow replica 1,000 ms) are long enough that 64 callers keep the client
 * well under its CPU capacity (about 640 calls/s), so what is measured is the
 * balancing and not the client's CPU queue (64 in flight at 2 ms would be
 * 32,000 calls/s, beyond any Node client on two cores). The slow replica is
 * slow but not short of capacity (a slow dependency, not a busy CPU).
 * "2 ms, queued" (reference rows) is the brief's example of 2 ms vs 20 ms as
 * a replica with a capacity: one call at a time, the rest queued, under
 * 120 calls/s of Poisson arrivals; there only a few calls are in flight, and
 * p2c's `rtt * (pending + 1)` sends the slow replica the calls it predicts
 * it can finish sooner than a busy fast one.
 */
interface Scale {
  readonly name: string;
  readonly fastMs: number;
  readonly slowMs: number;
  /** workers: calls each replica serves at a time (unset: no queue, every call just waits its service time). */
  readonly workers?: number;
  readonly load: LoadShape;
  readonly deadlineMs: number;
}

const FAST_MS = 2;

const delay = (ms: number): FaultConfig => ({ default: { delayMs: ms } });

interface Row {
  readonly scale: string;
  readonly config: string;
  readonly policy: string;
  readonly service_time_ms: string;
  readonly load: string;
  readonly rps: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly p999_ms: number | null;
  readonly max_ms: number | null;
  readonly success_rate: number | null;
  readonly calls: number;
  readonly errors: number;
  /** share is each replica's fraction of the attempts it served (server-side counts). */
  readonly share: Readonly<Record<string, number | null>>;
  readonly amplification: number | null;
  readonly client_cpu_cores: number | null;
  readonly server_cpu_cores: number | null;
  readonly other_load_cores: number | null;
}

function loadLabel(load: LoadShape): string {
  return load.mode === "closed"
    ? `closed loop, ${load.inFlight} in flight`
    : `${load.rps} calls/s open loop${load.arrivals === "poisson" ? ", Poisson arrivals" : ""} (≤ ${load.maxInFlight} in flight)`;
}

function toRow(
  scale: string,
  config: string,
  policy: string,
  service: string,
  load: LoadShape,
  w: Window,
): Row {
  const s = w.stats;
  const share: Record<string, number | null> = {};
  for (const p of w.perReplica) {
    share[p.name] = w.attempts > 0 ? r(p.attempts / w.attempts, 4) : null;
  }
  return {
    scale,
    config,
    policy,
    service_time_ms: service,
    load: loadLabel(load),
    rps: r((s.ok * 1000) / w.elapsedMs, 0),
    p50_ms: r(s.okLatency.p50, 2),
    p99_ms: r(s.okLatency.p99, 2),
    p999_ms: r(s.okLatency.p999, 2),
    max_ms: r(s.okLatency.max, 2),
    success_rate: s.completed > 0 ? r(s.ok / s.completed, 6) : null,
    calls: s.completed,
    errors: s.errors,
    share,
    amplification: s.completed > 0 ? r(w.attempts / s.completed, 3) : null,
    client_cpu_cores: r(w.clientCpuCores, 2),
    server_cpu_cores: r(w.serverCpuCores, 2),
    other_load_cores: r(w.otherLoadCores, 2),
  };
}

export const balancing: LabSuite = {
  lab: true,
  name: "balancing",
  title: "Balancing: a slow replica and a failing replica among three",
  notes: [
    "- Three connect-mesh servers (one process per scale, loopback) serve example.orders.v1.OrderService/GetOrder; service time is a fault-injected delay, so replica CPU is not what is measured.",
    "- Goal rows (\"64 in flight\"): the brief's closed loop of 64 callers, service time 100 ms and 1,000 ms for the slow replica, 5 s deadline. The brief's example (2 ms vs 20 ms) at 64 in flight would be 32,000 calls/s; connect-mesh spends 0.6–1 ms of CPU per call on each side on this 2-core machine, so the client would saturate near 1,000 calls/s and the rows would measure its CPU queue (p50 in the tens of ms for every policy) instead of balancing. Scaling both service times by 50 keeps the 10x ratio and the 64 callers, and keeps the client near 640 calls/s.",
    "- Reference rows (\"2 ms, queued\"): 2 ms vs 20 ms with a capacity: each replica serves one call at a time, first come first served (a worker queue ahead of the delay; 500 calls/s, the slow one 50), under 120 calls/s of Poisson arrivals (open loop, at most 64 in flight), 1 s deadline. Round robin then gives the slow replica 40 calls/s, 80% of its capacity. With a fraction of a call in flight per replica, p2c's `rtt * (pending + 1)` rates a fast replica with one or two calls pending (and an RTT estimate held up by this machine's 5-15 ms GC pauses) near the slow one, so the slow replica keeps a few percent of the calls: p2c's p99 is then the slow replica's latency.",
    '- One client process: createMeshTransport({ target: "static:///r0,r1,r2" }) with the policy shown, default retries, breakers and outlier detection. Each configuration gets a fresh client process (fresh EWMA and ejection state).',
    "- Share is each replica's fraction of the attempts the servers counted in the window; amplification is attempts / client calls.",
    '- Failing replica: the fault (50% UNAVAILABLE on r2, after the warm-up) is set while the load runs; time to eject is from that moment to the client\'s outlier `ejected` event for r2 (`source: "outlier"`). GetOrder is NO_SIDE_EFFECTS, so the default retry policy retries it.',
    "- Client CPU is the load generator's CPU in cores over the window; other load is CPU used by processes outside the benchmark (the machine is shared).",
  ],
  budgetMs: (quick) => (quick ? 60_000 : 300_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const { quick, lab, log } = ctx;
    const durationMs = quick ? 3_000 : 20_000;
    const warmupMs = quick ? 1_000 : 2_000;
    const failMs = quick ? 3_000 : 20_000;
    const rate = balancingLoad();
    const failures: string[] = [];

    const primary: Scale = {
      name: "64 in flight",
      fastMs: 100,
      slowMs: 1_000,
      load: { mode: "closed", inFlight: 64 },
      deadlineMs: 5_000,
    };
    const queued: Scale = {
      name: "2 ms, queued",
      fastMs: FAST_MS,
      slowMs: 20,
      workers: 1,
      load: rate,
      deadlineMs: 1_000,
    };

    type Config = {
      scale: Scale;
      config: string;
      policy: "p2c-ewma" | "round-robin";
      slow: boolean;
    };
    const configs: Config[] = [
      { scale: primary, config: "all healthy", policy: "p2c-ewma", slow: false },
      ...(quick
        ? []
        : [{ scale: primary, config: "all healthy", policy: "round-robin" as const, slow: false }]),
      { scale: primary, config: "slow replica", policy: "round-robin", slow: true },
      { scale: primary, config: "slow replica", policy: "p2c-ewma", slow: true },
      ...(quick
        ? []
        : [
            { scale: queued, config: "all healthy", policy: "p2c-ewma" as const, slow: false },
            { scale: queued, config: "slow replica", policy: "round-robin" as const, slow: true },
            { scale: queued, config: "slow replica", policy: "p2c-ewma" as const, slow: true },
          ]),
    ];

    // Fork everything at once: tsx start-up overlaps.
    const primaryChild = lab.forkReplica();
    const queuedChild = lab.forkReplica();
    const lgChildren = [...configs.map(() => lab.forkLoadgen()), lab.forkLoadgen()];
    const initGroup = (child: typeof primaryChild, scale: Scale) =>
      lab.initReplica(child, {
        replicas: NAMES.map((name) => ({
          name,
          faults: delay(scale.fastMs),
          ...(scale.workers === undefined ? {} : { workers: scale.workers }),
        })),
      });
    const [primaryGroup, queuedGroup] = await Promise.all([
      initGroup(primaryChild, primary),
      initGroup(queuedChild, queued),
    ]);
    const groupOf = (scale: Scale) => (scale === primary ? primaryGroup : queuedGroup);
    const targetOf = (scale: Scale) => `static:///${groupOf(scale).addresses.join(",")}`;
    const addressOf = Object.fromEntries(
      queuedGroup.ready.replicas.map((x) => [x.name, x.address]),
    );
    const lgs: Loadgen[] = await Promise.all(
      lgChildren.map((child, i) => {
        const c = configs[i];
        return lab.initLoadgen(child, {
          client: {
            kind: "mesh",
            // The last load generator is the failing-replica run's (2 ms replicas).
            target: targetOf(c?.scale ?? queued),
            options: { policy: c?.policy ?? "p2c-ewma" },
          },
          load: c?.scale.load ?? rate,
          timeoutMs: c?.scale.deadlineMs ?? queued.deadlineMs,
          tag: `lg${i}`,
        });
      }),
    );

    const rows: Row[] = [];
    for (const [i, c] of configs.entries()) {
      const lg = lgs[i] as Loadgen;
      const group = groupOf(c.scale);
      await group.setFaults(delay(c.scale.fastMs));
      if (c.slow) {
        await group.setFaults(delay(c.scale.slowMs), [SLOW]);
      }
      await lg.start();
      await sleep(warmupMs);
      const w = await measureWindow(
        lab,
        lg,
        [group],
        `${c.scale.name} ${c.config} ${c.policy}`,
        durationMs,
      );
      await lg.stop();
      const row = toRow(
        c.scale.name,
        c.config,
        c.policy,
        `${c.scale.fastMs}/${c.scale.fastMs}/${c.slow ? c.scale.slowMs : c.scale.fastMs}${c.scale.workers === undefined ? "" : " (queued)"}`,
        c.scale.load,
        w,
      );
      rows.push(row);
      log(
        `[balancing] ${c.scale.name}: ${c.config}, ${c.policy}, ${row.load}: ${fmt(row.rps, 0)} calls/s, p50 ${fmt(row.p50_ms, 2)} p99 ${fmt(row.p99_ms, 2)} p99.9 ${fmt(row.p999_ms, 2)} ms, success ${fmt((row.success_rate ?? Number.NaN) * 100, 2)}%, share ${JSON.stringify(row.share)}, CPU ${fmt(row.client_cpu_cores, 2)}/${fmt(row.server_cpu_cores, 2)}, other load ${fmt(row.other_load_cores, 2)}`,
      );
      if (w.stats.ok === 0) {
        failures.push(
          `${c.scale.name} ${c.config} ${c.policy}: no successful call (${w.stats.firstError ?? "?"})`,
        );
      }
    }

    // Failing replica (2 ms replicas, the primary open-loop rate).
    const group = queuedGroup;
    await group.setFaults(delay(FAST_MS));
    const lg = lgs[configs.length] as Loadgen;
    await lg.start();
    await sleep(warmupMs);
    const fault = await group.setFaults(
      { default: { delayMs: FAST_MS, abortPercent: 50, abortCode: Code.Unavailable } },
      [SLOW],
    );
    const w = await measureWindow(lab, lg, [group], "failing replica", failMs);
    const ev = await lg.events();
    await lg.stop();
    const ejections = ev.events.filter(
      (e) => e.kind === "ejected" && e.address === addressOf[SLOW] && e.atMs >= fault.atMs,
    );
    const firstEject = ejections[0];
    const failRow = {
      config: "failing replica (r2: 50% UNAVAILABLE)",
      policy: "p2c-ewma",
      load: loadLabel(rate),
      rps: r((w.stats.ok * 1000) / w.elapsedMs, 0),
      success_rate: w.stats.completed > 0 ? r(w.stats.ok / w.stats.completed, 6) : null,
      calls: w.stats.completed,
      errors: w.stats.errors,
      errors_by_code: w.stats.errorsByCode,
      time_to_eject_ms: firstEject === undefined ? null : r(firstEject.atMs - fault.atMs, 1),
      ejection_reason: firstEject?.reason ?? null,
      ejections: ejections.length,
      amplification: w.stats.completed > 0 ? r(w.attempts / w.stats.completed, 3) : null,
      share: Object.fromEntries(
        w.perReplica.map((p) => [p.name, w.attempts > 0 ? r(p.attempts / w.attempts, 4) : null]),
      ),
      failing_replica_attempts: w.perReplica.find((p) => p.name === SLOW)?.attempts ?? 0,
      retries: w.stats.retryEvents,
      p50_ms: r(w.stats.okLatency.p50, 2),
      p99_ms: r(w.stats.okLatency.p99, 2),
      p999_ms: r(w.stats.okLatency.p999, 2),
      client_cpu_cores: r(w.clientCpuCores, 2),
      other_load_cores: r(w.otherLoadCores, 2),
    };
    log(
      `[balancing] failing replica: success ${fmt((failRow.success_rate ?? Number.NaN) * 100, 3)}%, eject after ${fmt(failRow.time_to_eject_ms, 0)} ms (${failRow.ejection_reason}), amplification ${fmt(failRow.amplification, 3)}, share ${JSON.stringify(failRow.share)}`,
    );
    if (w.stats.ok === 0) {
      failures.push(`failing replica: no successful call (${w.stats.firstError ?? "?"})`);
    }

    const goalRows = rows.filter((x) => x.scale === primary.name);
    const healthy = goalRows.find((x) => x.config === "all healthy" && x.policy === "p2c-ewma");
    const rr = goalRows.find((x) => x.config === "slow replica" && x.policy === "round-robin");
    const p2c = goalRows.find((x) => x.config === "slow replica" && x.policy === "p2c-ewma");
    const ratio = (a: number | null | undefined, b: number | null | undefined) =>
      a == null || b == null || b === 0 ? null : a / b;
    const goals: Goal[] = [
      goal(
        "slow replica: p2c-ewma p99 vs all-healthy p99",
        "≤ 1.2x",
        ratio(p2c?.p99_ms, healthy?.p99_ms),
        (v) => v <= 1.2,
        (v) => `${v.toFixed(2)}x (${fmt(p2c?.p99_ms, 2)} / ${fmt(healthy?.p99_ms, 2)} ms)`,
      ),
      goal(
        "slow replica: p2c-ewma p99 vs round-robin p99",
        "≤ 0.2x",
        ratio(p2c?.p99_ms, rr?.p99_ms),
        (v) => v <= 0.2,
        (v) => `${v.toFixed(2)}x (${fmt(p2c?.p99_ms, 2)} / ${fmt(rr?.p99_ms, 2)} ms)`,
      ),
      goal(
        "failing replica: client success rate (retries on)",
        "≥ 99.99%",
        failRow.success_rate,
        (v) => v >= 0.9999,
        (v) => `${(v * 100).toFixed(3)}%`,
      ),
      goal(
        "failing replica: time to eject",
        "reported",
        failRow.time_to_eject_ms,
        () => true,
        (v) => `${v.toFixed(0)} ms (${failRow.ejection_reason})`,
      ),
    ];

    const shareCell = (s: Readonly<Record<string, number | null>>) =>
      NAMES.map((n) => fmt((s[n] ?? Number.NaN) * 100, 1)).join(" / ");
    const markdown = [
      `Goal rows: ${loadLabel(primary.load)}, service time ${primary.fastMs} ms (slow replica ${primary.slowMs} ms), ${primary.deadlineMs / 1000} s deadline.${quick ? "" : ` Reference rows: ${loadLabel(queued.load)}, service time ${queued.fastMs} ms (slow replica ${queued.slowMs} ms), one call at a time per replica, ${queued.deadlineMs / 1000} s deadline.`} ${durationMs / 1000} s per configuration after ${warmupMs / 1000} s warm-up, one repetition.`,
      "",
      mdTable(
        [
          "scale",
          "configuration",
          "policy",
          "load",
          "service time ms r0/r1/r2",
          "calls/s",
          "p50 ms",
          "p99 ms",
          "p99.9 ms",
          "max ms",
          "success",
          "share % r0 / r1 / r2",
          "CPU client / servers (cores)",
          "other load (cores)",
        ],
        rows.map((x) => [
          x.scale,
          x.config,
          x.policy,
          x.load.startsWith("closed") ? "64 in flight" : x.load.replace(/ open loop.*/, ""),
          x.service_time_ms,
          fmt(x.rps, 0),
          fmt(x.p50_ms, 2),
          fmt(x.p99_ms, 2),
          fmt(x.p999_ms, 2),
          fmt(x.max_ms, 2),
          `${fmt((x.success_rate ?? Number.NaN) * 100, 2)}%`,
          shareCell(x.share),
          `${fmt(x.client_cpu_cores, 2)} / ${fmt(x.server_cpu_cores, 2)}`,
          fmt(x.other_load_cores, 2),
        ]),
      ),
      "",
      `Failing replica (${failMs / 1000} s after the fault is set, p2c-ewma, default retries and outlier detection):`,
      "",
      mdTable(
        [
          "success",
          "errors",
          "time to eject",
          "ejection reason",
          "attempts / call",
          "share % r0 / r1 / r2",
          "retries",
          "p50 ms",
          "p99 ms",
          "p99.9 ms",
          "other load (cores)",
        ],
        [
          [
            `${fmt((failRow.success_rate ?? Number.NaN) * 100, 3)}%`,
            String(failRow.errors),
            failRow.time_to_eject_ms === null
              ? "not ejected"
              : `${fmt(failRow.time_to_eject_ms, 0)} ms`,
            String(failRow.ejection_reason ?? "–"),
            fmt(failRow.amplification, 3),
            shareCell(failRow.share),
            Object.entries(failRow.retries)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ") || "0",
            fmt(failRow.p50_ms, 2),
            fmt(failRow.p99_ms, 2),
            fmt(failRow.p999_ms, 2),
            fmt(failRow.other_load_cores, 2),
          ],
        ],
      ),
    ].join("\n");

    return {
      method: {
        scales: [primary, ...(quick ? [] : [queued])],
        failing_replica_load: loadLabel(rate),
        warmup_ms: warmupMs,
        duration_ms: durationMs,
        failing_duration_ms: failMs,
        replicas:
          "3 mesh servers per scale in one process, service time by fault-injected delay (queued: one call at a time)",
      },
      results: { slow_replica: rows, failing_replica: failRow },
      goals,
      markdown,
      failures,
    };
  },
  configs: () => [],
};

/**
 * balancingLoad is the load of the 2 ms rows (queued reference, failing
 * replica): 120 calls/s, open loop with Poisson arrivals, at most 64 in
 * flight. The replicas there serve one call at a time, so the fast ones can
 * take 500 calls/s and the slow one 50: round robin sends the slow one 40
 * calls/s (80% busy, a queue that comes and goes) and the fleet stays far
 * from its capacity. BENCH_BALANCING_LOAD=closed:64, rate:200:64 (even gaps)
 * or poisson:200:64 overrides it.
 */
function balancingLoad(): LoadShape {
  const env = process.env.BENCH_BALANCING_LOAD;
  if (env !== undefined) {
    const [mode, a, b] = env.split(":");
    if (mode === "closed") {
      return { mode: "closed", inFlight: Number(a) };
    }
    return {
      mode: "rate",
      rps: Number(a),
      maxInFlight: Number(b ?? 64),
      arrivals: mode === "poisson" ? "poisson" : "uniform",
    };
  }
  return { mode: "rate", rps: 120, maxInFlight: 64, arrivals: "poisson" };
}
