// Suite "retries": (a) one replica of three fails 20% of calls with
// UNAVAILABLE — success rate and load amplification with default retries;
// (b) every replica fails every call for a while, then recovers —
// amplification during the outage, circuit breaker timings, fail-fast
// latency, time to recover. connect-mesh (default retry policy, budget,
// breakers, outlier detection) and grpc-js (service-config retry policy with
// retry throttling) run side by side against the same servers.

import { Code } from "@connectrpc/connect";
import type { FaultConfig } from "../../src/index.js";
import {
  fmt,
  type Goal,
  goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  mdTable,
  r,
  sleep,
} from "../lib/lab/lab.js";
import { Cutter, settle, type Window } from "../lib/lab/measure.js";
import type { LabEvent, LoadShape } from "../lib/lab/protocol.js";

const SERVICE_MS = 2;
const NAMES = ["r0", "r1", "r2"] as const;
const RATE = 100;
const DEADLINE_MS = 1_000;

/** GRPC_JS_SERVICE_CONFIG is the grpc-js equivalent of the mesh's default retry policy. */
const GRPC_JS_SERVICE_CONFIG = {
  loadBalancingConfig: [{ round_robin: {} }],
  methodConfig: [
    {
      name: [{ service: "example.orders.v1.OrderService", method: "GetOrder" }],
      retryPolicy: {
        maxAttempts: 3,
        initialBackoff: "0.05s",
        maxBackoff: "1s",
        backoffMultiplier: 2,
        retryableStatusCodes: ["UNAVAILABLE"],
      },
    },
  ],
  retryThrottling: { maxTokens: 10, tokenRatio: 0.1 },
};

const healthy: FaultConfig = { default: { delayMs: SERVICE_MS } };
const failing = (percent: number): FaultConfig => ({
  default: { delayMs: SERVICE_MS, abortPercent: percent, abortCode: Code.Unavailable },
});

const CLIENTS = ["mesh", "grpc-js"] as const;
type ClientName = (typeof CLIENTS)[number];

const pct = (v: number | null | undefined, digits = 3) =>
  v === null || v === undefined ? "–" : `${(v * 100).toFixed(digits)}%`;

function summary(w: Window) {
  const s = w.stats;
  return {
    calls: s.completed,
    ok: s.ok,
    errors: s.errors,
    errors_by_code: s.errorsByCode,
    success_rate: s.completed > 0 ? r(s.ok / s.completed, 6) : null,
    server_attempts: w.attempts,
    amplification: s.completed > 0 ? r(w.attempts / s.completed, 3) : null,
    attempts_per_replica: Object.fromEntries(w.perReplica.map((p) => [p.name, p.attempts])),
    ok_p50_ms: r(s.okLatency.p50, 2),
    ok_p99_ms: r(s.okLatency.p99, 2),
    ok_p999_ms: r(s.okLatency.p999, 2),
    error_p50_ms: r(s.errorLatency.p50, 3),
    error_p99_ms: r(s.errorLatency.p99, 3),
    breaker_open_calls: s.breakerOpen,
    breaker_refused_retry_calls: s.breakerOpenAfterAttempts,
    breaker_open_p50_ms: r(s.breakerOpenLatency.p50, 3),
    breaker_open_p99_ms: r(s.breakerOpenLatency.p99, 3),
    retry_events: s.retryEvents,
    skipped_starts: s.skipped,
    duration_ms: r(w.elapsedMs, 0),
    client_cpu_cores: r(w.clientCpuCores, 2),
    other_load_cores: r(w.otherLoadCores, 2),
  };
}

type Summary = ReturnType<typeof summary>;

export const retries: LabSuite = {
  lab: true,
  name: "retries",
  title: "Retries: a flaky replica, then a total outage and recovery (connect-mesh vs grpc-js)",
  notes: [
    `- Three connect-mesh servers (one process, loopback) serve example.orders.v1.OrderService/GetOrder (NO_SIDE_EFFECTS) with a ${SERVICE_MS} ms fault-injected service time; faults change at run time through the servers' fault injectors (FaultInjector.set over IPC).`,
    `- Two client processes run at the same time, each starting ${RATE} calls/s with Poisson arrivals (open loop; ${DEADLINE_MS} ms deadline per call; evenly spaced starts would put both clients' calls, and the servers' work for them, on the same instants of the 2 CPUs and time that contention): connect-mesh with createMeshTransport({ target: "static:///r0,r1,r2" }) and every default (p2c-ewma, retries: 3 attempts, 50 ms → 1 s backoff, UNAVAILABLE, budget 20% + 10/s; per-method circuit breaker; outlier detection), and grpc-js with one channel to \`ipv4:r0,r1,r2\` and \`grpc.service_config\` = round_robin + retryPolicy { maxAttempts 3, initialBackoff 0.05s, maxBackoff 1s, backoffMultiplier 2, retryableStatusCodes [UNAVAILABLE] } + retryThrottling { maxTokens 10, tokenRatio 0.1 }.`,
    "- Server attempts are counted by the servers (an interceptor ahead of fault injection) per client and phase: every call carries `x-bench-client` and the phase it started in (`x-bench-phase`), retries included. Calls count in the phase they started in; amplification = server attempts caused by the calls started in a phase / those calls, read after the load has drained, so it does not depend on when each process saw a phase change.",
    "- Outage: all three replicas fail 100% with UNAVAILABLE. Time to open = from the fault's start to the client's breaker `open` event; fail-fast p99 = latency of calls the open breaker refused at their first attempt, so nothing was sent (calls whose first attempt failed on the network and whose retry the breaker, opened meanwhile, refused are counted apart: they waited for an answer and a backoff); time to recover = from the end of the outage to the first successful call completed after it.",
    "- The mesh client keeps the state that (a) left (EWMA, ejections, budget) when (b) starts, as a long-running client would.",
    "- grpc-js retries here: mesh servers send an error before any message as a Trailers-Only response, the only kind gRFC A6 lets a client retry. grpc-js' retryThrottling (10 tokens, 0.1 per success; retries stop below half the tokens) is its only brake: it has no circuit breaker.",
    "- The mesh breaker's default window is the last 100 attempts (open at ≥ 50% failures, ≥ 20 calls): after a healthy period a sudden total outage opens it after about 50 failed attempts; until then the retry budget (20% of the last 10 s of calls + 10/s) pays for retries.",
  ],
  budgetMs: (quick) => (quick ? 60_000 : 240_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const { quick, lab, log } = ctx;
    const warmupMs = quick ? 1_000 : 3_000;
    const flakyMs = quick ? 3_000 : 40_000;
    const settleMs = quick ? 500 : 2_000;
    const outageMs = quick ? 2_000 : 10_000;
    const recoveryWaitMs = quick ? 8_000 : 25_000;
    const afterMs = quick ? 500 : 2_000;
    const load: LoadShape = { mode: "rate", rps: RATE, maxInFlight: 512, arrivals: "poisson" };
    const failures: string[] = [];

    const replicaChild = lab.forkReplica();
    const meshChild = lab.forkLoadgen("loadgen:mesh");
    const grpcChild = lab.forkLoadgen("loadgen:grpc-js");
    const group = await lab.initReplica(replicaChild, {
      replicas: NAMES.map((name) => ({ name, faults: healthy })),
    });
    const [mesh, grpcJs] = await Promise.all([
      lab.initLoadgen(meshChild, {
        client: { kind: "mesh", target: `static:///${group.addresses.join(",")}` },
        load,
        timeoutMs: DEADLINE_MS,
        tag: "mesh",
      }),
      lab.initLoadgen(grpcChild, {
        client: {
          kind: "grpc-js",
          target: `ipv4:${group.addresses.join(",")}`,
          serviceConfig: GRPC_JS_SERVICE_CONFIG,
        },
        load,
        timeoutMs: DEADLINE_MS,
        tag: "grpc-js",
      }),
    ]);
    const cutter = new Cutter(lab, [mesh, grpcJs], [group]);

    await Promise.all([mesh.start(), grpcJs.start()]);
    const warm = await settle(cutter, { minMs: warmupMs, maxMs: quick ? 6_000 : 20_000 });
    if (!warm.clean) {
      log(
        `[retries] warm-up: still failing calls after ${fmt(warm.waitedMs / 1000, 1)} s; going on`,
      );
    }

    // (a) one replica fails 20%.
    await group.setFaults(failing(20), ["r2"]);
    const flakyPhase = await cutter.cut("flaky");
    await sleep(flakyMs);
    await cutter.cut("after flaky");
    await group.setFaults(healthy);

    // (b) total outage, then recovery.
    const calm = await settle(cutter, { minMs: settleMs, maxMs: quick ? 3_000 : 15_000 });
    const outageStart = await group.setFaults(failing(100));
    const outagePhase = await cutter.cut("outage");
    await sleep(outageMs);
    const recoveryPhase = await cutter.cut("recovery");
    const outageEnd = await group.setFaults(healthy);
    const recovered = await Promise.all(
      [mesh, grpcJs].map((lg) => lg.firstOkAfter(outageEnd.atMs, recoveryWaitMs)),
    );
    await sleep(afterMs);
    const windows = await cutter.finish();
    const meshEvents = (await mesh.events()).events;
    await Promise.all([mesh.stop(), grpcJs.stop()]);

    const flakyW = windows(flakyPhase.id);
    const outageW = windows(outagePhase.id);
    const recoveryW = windows(recoveryPhase.id);
    const flaky = Object.fromEntries(
      CLIENTS.map((c, i) => [c, summary(flakyW[i] as Window)]),
    ) as Record<ClientName, Summary>;
    for (const c of CLIENTS) {
      const x = flaky[c];
      log(
        `[retries] (a) ${c}: success ${pct(x.success_rate)}, amplification ${fmt(x.amplification, 3)} (${x.server_attempts} attempts / ${x.calls} calls), errors ${JSON.stringify(x.errors_by_code)}`,
      );
    }

    const breakerEvents = meshEvents.filter(
      (e) => e.kind === "breaker" && e.atMs >= outageStart.atMs - 1,
    );
    const firstOpen = breakerEvents.find((e) => e.to === "open");
    const ejections = meshEvents.filter(
      (e) => e.kind === "ejected" && e.atMs >= outageStart.atMs - 1,
    );
    const outage = Object.fromEntries(
      CLIENTS.map((c, i) => {
        const w = outageW[i] as Window;
        const rec = recovered[i]?.okAtMs ?? null;
        return [
          c,
          {
            ...summary(w),
            time_to_open_ms:
              c === "mesh" && firstOpen !== undefined
                ? r(firstOpen.atMs - outageStart.atMs, 1)
                : null,
            time_to_recover_ms: rec === null ? null : r(rec - outageEnd.atMs, 1),
            recovery: summary(recoveryW[i] as Window),
          },
        ];
      }),
    ) as Record<
      ClientName,
      Summary & {
        time_to_open_ms: number | null;
        time_to_recover_ms: number | null;
        recovery: Summary;
      }
    >;
    for (const c of CLIENTS) {
      const x = outage[c];
      log(
        `[retries] (b) ${c}: amplification ${fmt(x.amplification, 3)} (${x.server_attempts}/${x.calls}), open after ${fmt(x.time_to_open_ms, 0)} ms, fail-fast p99 ${fmt(x.breaker_open_p99_ms, 3)} ms, recovered after ${fmt(x.time_to_recover_ms, 0)} ms`,
      );
    }
    for (const c of CLIENTS) {
      if (flaky[c].ok === 0) {
        failures.push(`(a) ${c}: no successful call`);
      }
    }

    const goals: Goal[] = [
      goal(
        "(a) mesh success rate, 20% UNAVAILABLE on 1 of 3",
        "≥ 99.99%",
        flaky.mesh.success_rate,
        (v) => v >= 0.9999,
        (v) => `${pct(v)} (${flaky.mesh.errors} of ${flaky.mesh.calls} failed)`,
      ),
      goal(
        "(a) mesh amplification",
        "≤ 1.25x",
        flaky.mesh.amplification,
        (v) => v <= 1.25,
        (v) => `${v.toFixed(3)}x`,
      ),
      goal(
        "(b) mesh amplification during the outage",
        "≤ 1.1x",
        outage.mesh.amplification,
        (v) => v <= 1.1,
        (v) => `${v.toFixed(3)}x`,
      ),
      goal(
        "(b) mesh time to open the breaker",
        "≤ 1 s",
        outage.mesh.time_to_open_ms,
        (v) => v <= 1_000,
        (v) => `${v.toFixed(0)} ms`,
      ),
      goal(
        "(b) mesh fail-fast p99 while open",
        "≤ 1 ms",
        outage.mesh.breaker_open_p99_ms,
        (v) => v <= 1,
        (v) => `${v.toFixed(3)} ms`,
      ),
      goal(
        "(b) mesh time to recover",
        "reported",
        outage.mesh.time_to_recover_ms,
        () => true,
        (v) => `${v.toFixed(0)} ms`,
      ),
    ];

    const fmtEvents = (list: readonly LabEvent[]) =>
      list
        .map((e) => `${fmt(e.atMs - outageStart.atMs, 0)} ms ${e.from}→${e.to} (${e.reason})`)
        .join("; ");
    const errCodes = (s: Summary) =>
      Object.entries(s.errors_by_code)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ") || "–";
    const retryCell = (s: Summary) =>
      Object.entries(s.retry_events)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ") || "–";
    const markdown = [
      `Load: each client starts ${RATE} calls/s (open loop, Poisson arrivals), both at once; ${DEADLINE_MS} ms deadline. (a) ${flakyMs / 1000} s window after a ${fmt(warm.waitedMs / 1000, 1)} s warm-up (${warm.clean ? "ended with a clean 0.5 s window" : "**still failing calls at its end**"}); (b) ${outageMs / 1000} s outage${calm.clean ? "" : " (**calls were still failing just before it**)"}, then up to ${recoveryWaitMs / 1000} s for the first success.`,
      "",
      "(a) r2 fails 20% of calls with UNAVAILABLE:",
      "",
      mdTable(
        [
          "client",
          "calls",
          "success",
          "errors",
          "server attempts",
          "amplification",
          "attempts r0 / r1 / r2",
          "p50 ms",
          "p99 ms",
          "p99.9 ms",
          "mesh retry events",
          "client CPU (cores)",
          "other load (cores)",
        ],
        CLIENTS.map((c) => {
          const x = flaky[c];
          return [
            c,
            String(x.calls),
            pct(x.success_rate),
            errCodes(x),
            String(x.server_attempts),
            `${fmt(x.amplification, 3)}x`,
            NAMES.map((n) => String(x.attempts_per_replica[n] ?? 0)).join(" / "),
            fmt(x.ok_p50_ms, 2),
            fmt(x.ok_p99_ms, 2),
            fmt(x.ok_p999_ms, 2),
            retryCell(x),
            fmt(x.client_cpu_cores, 2),
            fmt(x.other_load_cores, 2),
          ];
        }),
      ),
      "",
      `(b) all replicas fail 100% with UNAVAILABLE for ${outageMs / 1000} s, then recover:`,
      "",
      mdTable(
        [
          "client",
          "calls in outage",
          "server attempts",
          "amplification",
          "time to open breaker",
          "failed fast by breaker",
          "fail-fast p50 / p99 ms",
          "error p50 / p99 ms",
          "time to recover",
          "after recovery: success",
          "mesh retry events (outage)",
          "other load (cores)",
        ],
        CLIENTS.map((c) => {
          const x = outage[c];
          return [
            c,
            String(x.calls),
            String(x.server_attempts),
            `${fmt(x.amplification, 3)}x`,
            c === "mesh"
              ? x.time_to_open_ms === null
                ? "never"
                : `${fmt(x.time_to_open_ms, 0)} ms`
              : "n/a (no breaker)",
            c === "mesh"
              ? `${x.breaker_open_calls} (+${x.breaker_refused_retry_calls} retries refused)`
              : "n/a",
            c === "mesh"
              ? `${fmt(x.breaker_open_p50_ms, 3)} / ${fmt(x.breaker_open_p99_ms, 3)}`
              : "n/a",
            `${fmt(x.error_p50_ms, 2)} / ${fmt(x.error_p99_ms, 2)}`,
            x.time_to_recover_ms === null
              ? `> ${recoveryWaitMs / 1000} s`
              : `${fmt(x.time_to_recover_ms, 0)} ms`,
            pct(x.recovery.success_rate, 2),
            retryCell(x),
            fmt(x.other_load_cores, 2),
          ];
        }),
      ),
      "",
      `Mesh breaker transitions (ms after the outage began): ${fmtEvents(breakerEvents) || "none"}. Outlier ejections during (b): ${ejections.length}.`,
    ].join("\n");

    return {
      method: {
        load: `${RATE} calls/s per client, open loop with Poisson arrivals (at most ${load.mode === "rate" ? load.maxInFlight : 0} in flight), mesh and grpc-js clients at the same time`,
        deadline_ms: DEADLINE_MS,
        warmup_ms: warmupMs,
        warmup_waited_ms: r(warm.waitedMs, 0),
        warmup_clean: warm.clean,
        clean_before_outage: calm.clean,
        flaky_window_ms: flakyMs,
        outage_ms: outageMs,
        recovery_wait_ms: recoveryWaitMs,
        service_time_ms: SERVICE_MS,
        grpc_js_service_config: GRPC_JS_SERVICE_CONFIG,
      },
      results: {
        flaky_replica: flaky,
        outage: {
          ...outage,
          mesh_breaker_transitions: breakerEvents.map((e) => ({
            after_outage_start_ms: r(e.atMs - outageStart.atMs, 1),
            from: e.from,
            to: e.to,
            reason: e.reason,
          })),
          mesh_ejections: ejections.length,
        },
      },
      goals,
      markdown,
      failures,
    };
  },
  configs: () => [],
};
