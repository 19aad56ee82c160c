// Suite "discovery": how fast a client on `etcd:///svc` (real etcd) or
// `mesh:///svc` (embedded file registry) sees a newly registered server take
// traffic, and a SIGKILLed server leave its endpoint set.

import { randomUUID } from "node:crypto";
import { constants } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ETCD_BINARY, type EtcdServer, startEtcdServer } from "../../test/support/etcd-server.js";
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
import { Cutter, settle, type Window } from "../lib/lab/measure.js";
import { nowMs, type RegistrySpec, type ReplicaInit } from "../lib/lab/protocol.js";

const LEASE_TTL_MS = 3_000;
const RATE = 100;
const SERVICE_MS = 2;
const REQUIRE_ENV = "MESH_REQUIRE_SERVICES";

interface CycleResult {
  readonly registry: string;
  readonly rep: number;
  /** added_ms: from the new server's listen() resolving (registered) to the client's `endpoints` event adding it. */
  readonly added_ms: number | null;
  /** first_call_ms: from registration to the first successful call it served. */
  readonly first_call_ms: number | null;
  /** removed_ms: from SIGKILL to the client's `endpoints` event removing the killed server. */
  readonly removed_ms: number | null;
  /** kill_phase_success_rate: calls started between the kill and the removal (+1 s). */
  readonly kill_phase_success_rate: number | null;
  readonly kill_phase_calls: number;
  readonly kill_phase_errors: Readonly<Record<string, number>>;
  readonly other_load_cores: number | null;
}

async function etcdAvailable(): Promise<string | true> {
  try {
    await access(ETCD_BINARY, constants.X_OK);
    return true;
  } catch {
    return `${ETCD_BINARY} is not an executable file (install etcd-server or set MESH_ETCD_BINARY)`;
  }
}

/** waitFor polls `probe` every 20 ms until it returns a value, or `timeoutMs` passes (null). */
async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T | null> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) {
      return v;
    }
    if (performance.now() >= until) {
      return null;
    }
    await sleep(20);
  }
}

async function runRegistry(
  ctx: LabContext,
  kind: "etcd" | "mesh",
  spec: RegistrySpec,
  reps: number,
): Promise<{ cycles: CycleResult[]; failures: string[] }> {
  const { lab, log, quick } = ctx;
  const service = `bench-${kind}-${randomUUID().slice(0, 8)}`;
  const failures: string[] = [];
  const registration = { registry: spec, service };
  const init = (name: string): ReplicaInit => ({
    replicas: [{ name, faults: { default: { delayMs: SERVICE_MS } } }],
    registration,
  });
  // Fork everything up front so tsx start-up overlaps: the load generator,
  // two servers registered from the start, and one server per repetition
  // (registered when its turn comes).
  const lgChild = lab.forkLoadgen(`loadgen:${kind}`);
  const initialChildren = [0, 1].map((i) => lab.forkReplica(`${kind}-s${i}`));
  const newChildren = Array.from({ length: reps }, (_, i) => lab.forkReplica(`${kind}-n${i}`));
  const initial = await Promise.all(
    initialChildren.map((c, i) => lab.initReplica(c, init(`${kind}-s${i}`))),
  );
  const lg: Loadgen = await lab.initLoadgen(lgChild, {
    client: { kind: "mesh", target: `${kind}:///${service}`, registry: spec },
    load: { mode: "rate", rps: RATE, maxInFlight: 256 },
    timeoutMs: 1_000,
    tag: kind,
  });
  const cutter = new Cutter(lab, [lg], initial);
  await lg.start();
  await settle(cutter, { minMs: quick ? 500 : 2_000, maxMs: quick ? 3_000 : 10_000 });

  const alive = [...initial];
  const cycles: CycleResult[] = [];
  const killPhases: string[] = [];
  const partial: Array<
    Omit<
      CycleResult,
      "kill_phase_success_rate" | "kill_phase_calls" | "kill_phase_errors" | "other_load_cores"
    >
  > = [];
  for (let rep = 0; rep < reps; rep++) {
    // A new server registers: when does the client add it, and call it?
    const name = `${kind}-n${rep}`;
    const group = await lab.initReplica(newChildren[rep]!, init(name));
    const ready = group.ready.replicas[0]!;
    const addedAt = await waitFor(async () => {
      const ev = await lg.events();
      return ev.events.find((e) => e.kind === "endpoints" && e.added?.includes(ready.address))
        ?.atMs;
    }, LEASE_TTL_MS + 2_000);
    const firstOk = await waitFor(
      async () => (await lg.events()).firstOkAtMs[name],
      quick ? 3_000 : 20_000,
    );
    alive.push(group);

    // The oldest server is SIGKILLed: when does the client drop it?
    const victim = alive.shift()!;
    const victimAddress = victim.ready.replicas[0]!.address;
    const { id } = await cutter.cut(`kill ${rep}`);
    killPhases.push(id);
    const killAt = nowMs();
    await victim.kill();
    const removedAt = await waitFor(async () => {
      const ev = await lg.events();
      return ev.events.find(
        (e) => e.kind === "endpoints" && e.removed?.includes(victimAddress) && e.atMs >= killAt,
      )?.atMs;
    }, LEASE_TTL_MS + 5_000);
    await sleep(quick ? 200 : 1_000);
    await cutter.cut(`after kill ${rep}`);
    partial.push({
      registry: kind,
      rep: rep + 1,
      added_ms: addedAt === null ? null : r(addedAt - ready.readyAtMs, 1),
      first_call_ms: firstOk === null ? null : r(firstOk - ready.readyAtMs, 1),
      removed_ms: removedAt === null ? null : r(removedAt - killAt, 1),
    });
    const last = partial[partial.length - 1]!;
    log(
      `[discovery] ${kind} #${rep + 1}: added after ${fmt(last.added_ms, 0)} ms, first call after ${fmt(last.first_call_ms, 0)} ms, killed server removed after ${fmt(last.removed_ms, 0)} ms`,
    );
    if (last.removed_ms === null) {
      failures.push(
        `${kind} #${rep + 1}: the killed server was not removed within ${(LEASE_TTL_MS + 5_000) / 1000} s`,
      );
    }
  }
  const windows = await cutter.finish();
  await lg.stop();
  for (const [i, p] of partial.entries()) {
    const w = windows(killPhases[i]!)[0] as Window;
    cycles.push({
      ...p,
      kill_phase_success_rate: w.stats.completed > 0 ? r(w.stats.ok / w.stats.completed, 6) : null,
      kill_phase_calls: w.stats.completed,
      kill_phase_errors: w.stats.errorsByCode,
      other_load_cores: r(w.otherLoadCores, 2),
    });
  }
  return { cycles, failures };
}

export const discovery: LabSuite = {
  lab: true,
  name: "discovery",
  title: "Discovery: a new server's first call and a killed server's removal (etcd, mesh registry)",
  notes: [
    `- Each server is its own process (connect-mesh server, GetOrder with a ${SERVICE_MS} ms injected service time) registering itself with leaseTtlMs ${LEASE_TTL_MS} in the registry: a real etcd (test/support/etcd-server.ts: the etcd binary on loopback, 25 ms heartbeat) through createEtcdRegistry, or createMeshRegistry({ dir: <temp dir> }).`,
    `- One client process per registry: createMeshTransport({ target: "etcd:///svc" | "mesh:///svc", registries: [the same kind of registry] }) with every default (p2c-ewma, 10 s slow start, retries), starting ${RATE} GetOrder calls/s (open loop, 1 s deadline). Both registries run at the same time.`,
    "- New server: from its listen() resolving (it is registered then) to the client's balancer `endpoints` event adding it (`added`), and to the first successful call it served (`first call`).",
    "- Killed server: SIGKILL (no deregistration; the lease must expire) to the client's `endpoints` event removing it. Calls in that phase are retried on the other servers (GetOrder is NO_SIDE_EFFECTS); the success rate covers calls started between the kill and 1 s after the removal.",
  ],
  budgetMs: (quick) => (quick ? 60_000 : 240_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const { quick, log } = ctx;
    const reps = quick ? 1 : 5;
    const available = await etcdAvailable();
    if (available !== true) {
      const message = `etcd is not available: ${available}`;
      if (process.env[REQUIRE_ENV] === "1") {
        return {
          method: {},
          results: {},
          goals: [],
          markdown: "",
          failures: [`${message}; ${REQUIRE_ENV}=1 requires it`],
        };
      }
      log(
        `\n${"!".repeat(78)}\n!!! SKIPPING SUITE discovery: ${message}\n!!! Set ${REQUIRE_ENV}=1 to fail instead.\n${"!".repeat(78)}\n`,
      );
      return { method: {}, results: {}, goals: [], markdown: "", failures: [], skipped: message };
    }
    let etcd: EtcdServer | undefined;
    const dir = await mkdtemp(join(tmpdir(), "mesh-bench-registry-"));
    try {
      etcd = await startEtcdServer();
      const [e, m] = await Promise.all([
        runRegistry(
          ctx,
          "etcd",
          { kind: "etcd", endpoints: [etcd.endpoint], leaseTtlMs: LEASE_TTL_MS },
          reps,
        ),
        runRegistry(ctx, "mesh", { kind: "mesh", dir, leaseTtlMs: LEASE_TTL_MS }, reps),
      ]);
      const cycles = [...e.cycles, ...m.cycles];
      const median = (xs: (number | null)[]) => {
        const v = xs.filter((x): x is number => x !== null).sort((a, b) => a - b);
        if (v.length === 0) return null;
        const mid = v.length >> 1;
        return v.length % 2 === 1
          ? (v[mid] as number)
          : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
      };
      const worst = (xs: (number | null)[]) =>
        xs.some((x) => x === null) ? null : Math.max(...(xs as number[]));
      const summaryRows = (["etcd", "mesh"] as const).map((kind) => {
        const c = cycles.filter((x) => x.registry === kind);
        return {
          registry: kind,
          reps: c.length,
          added_ms_median: r(median(c.map((x) => x.added_ms)), 1),
          first_call_ms_median: r(median(c.map((x) => x.first_call_ms)), 1),
          first_call_ms_max: r(worst(c.map((x) => x.first_call_ms)), 1),
          removed_ms_median: r(median(c.map((x) => x.removed_ms)), 1),
          removed_ms_max: r(worst(c.map((x) => x.removed_ms)), 1),
          kill_phase_success_rate_min: r(
            Math.min(...c.map((x) => x.kill_phase_success_rate ?? Number.NaN)),
            6,
          ),
        };
      });
      const goals: Goal[] = summaryRows.flatMap((s) => [
        goal(
          `${s.registry}: new server's first call (worst of ${s.reps})`,
          "≤ 1 s",
          s.first_call_ms_max,
          (v) => v <= 1_000,
          (v) =>
            `${v.toFixed(0)} ms (endpoint added after ${fmt(s.added_ms_median, 0)} ms, median)`,
        ),
        goal(
          `${s.registry}: killed server removed (worst of ${s.reps})`,
          `≤ TTL + 1 s = ${(LEASE_TTL_MS + 1_000) / 1000} s`,
          s.removed_ms_max,
          (v) => v <= LEASE_TTL_MS + 1_000,
          (v) => `${v.toFixed(0)} ms`,
        ),
      ]);
      const waitFirst = quick ? 3 : 20;
      const markdown = [
        `Lease TTL ${LEASE_TTL_MS / 1000} s; client load ${RATE} calls/s per registry; ${reps} add/kill cycle(s) per registry (a first call is waited for up to ${waitFirst} s).`,
        "",
        mdTable(
          [
            "registry",
            "cycles",
            "endpoint added (median)",
            "first call (median / worst)",
            "killed server removed (median / worst)",
            "success while a server was dead (worst cycle)",
          ],
          summaryRows.map((s) => [
            s.registry,
            String(s.reps),
            `${fmt(s.added_ms_median, 0)} ms`,
            `${fmt(s.first_call_ms_median, 0)} / ${s.first_call_ms_max === null ? `> ${waitFirst} s` : `${fmt(s.first_call_ms_max, 0)} ms`}`,
            `${fmt(s.removed_ms_median, 0)} / ${fmt(s.removed_ms_max, 0)} ms`,
            s.kill_phase_success_rate_min === null
              ? "–"
              : `${(s.kill_phase_success_rate_min * 100).toFixed(3)}%`,
          ]),
        ),
        "",
        "Per cycle:",
        "",
        mdTable(
          [
            "registry",
            "cycle",
            "added ms",
            "first call ms",
            "removed ms",
            "calls while dead",
            "errors",
            "other load (cores)",
          ],
          cycles.map((c) => [
            c.registry,
            String(c.rep),
            fmt(c.added_ms, 0),
            c.first_call_ms === null ? `> ${waitFirst} s` : fmt(c.first_call_ms, 0),
            fmt(c.removed_ms, 0),
            String(c.kill_phase_calls),
            Object.entries(c.kill_phase_errors)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ") || "0",
            fmt(c.other_load_cores, 2),
          ]),
        ),
      ].join("\n");
      return {
        method: {
          lease_ttl_ms: LEASE_TTL_MS,
          load: `${RATE} calls/s per client, open loop, 1 s deadline`,
          cycles_per_registry: reps,
          first_call_wait_ms: waitFirst * 1000,
          etcd_binary: ETCD_BINARY,
        },
        results: { summary: summaryRows, cycles },
        goals,
        markdown,
        failures: [...e.failures, ...m.failures],
      };
    } finally {
      await etcd?.close();
      await rm(dir, { recursive: true, force: true });
    }
  },
  configs: () => [],
};
