// Suite "idempotency": (a) CPU per call of the idempotency layer — client
// keys plus server de-duplication with the memory store and with the Redis
// store — as ratios to the same stack with it off, measured in one run with
// interleaved repetitions; (b) an exactly-once soak: every key sent three
// times at once, each copy to another of three replicas sharing one Redis
// store; the handler counts its executions per key, which must equal the
// number of keys. The Redis parts are skipped without Redis (failed with
// MESH_REQUIRE_SERVICES=1). Nothing is asserted beyond "calls succeed".

import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import {
  type Goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  mdTable,
} from "../lib/lab/lab.js";
import {
  aggregate,
  Children,
  f,
  INIT_TIMEOUT_MS,
  type PairedConfig,
  type PairedRow,
  pairedTiming,
  rnd,
  runInterleaved,
  cpuTable as sharedCpuTable,
  startConfigs,
} from "../lib/paired/paired.js";
import type {
  KeyCounts,
  PairedClientSpec,
  PairedServerSpec,
  ServerChildReady,
  ServerWindow,
  SoakResult,
} from "../lib/paired/protocol.js";
import { soakKey } from "../lib/paired/protocol.js";
import {
  deleteKeys,
  openAdmin,
  REDIS_HOST,
  REDIS_PORT,
  REQUIRE_SERVICES_ENV,
  redisReachable,
} from "../lib/paired/redis.js";
import type { ChildHandle } from "../lib/process.js";
import { otherCores, readCpuTimes } from "../lib/sysload.js";

const IN_FLIGHT = 32;
/** TTL_MS keeps the run's records short-lived in Redis (they are also deleted at the end). */
const TTL_MS = 10 * 60_000;
const REPLICAS = 3;
const COPIES = 3;
const SOAK_KEYS_IN_FLIGHT = 16;
/** SOAK_HANDLER_MS keeps a key's first copy in progress while the others arrive. */
const SOAK_HANDLER_MS = 2;
const SOAK_TIMEOUT_MS = 10_000;

const TIMING = pairedTiming(IN_FLIGHT);
const SOAK_KEYS = { full: 10_000, quick: 500 };
const SOAK_WARMUP_KEYS = { full: 300, quick: 60 };

function cpuConfigs(redisPrefix: string | undefined): PairedConfig[] {
  const client = { service: "orders" as const, log: { kind: "off" as const } };
  const server = { service: "orders" as const, log: { kind: "off" as const }, ttlMs: TTL_MS };
  const configs: PairedConfig[] = [
    {
      label: "idempotency off",
      server: { ...server, idempotency: "off" },
      client: { ...client, idempotencyKeys: false },
    },
    {
      label: "memory store",
      server: { ...server, idempotency: "memory" },
      client: { ...client, idempotencyKeys: true },
    },
  ];
  if (redisPrefix !== undefined) {
    configs.push({
      label: "redis store",
      server: {
        ...server,
        idempotency: "redis",
        redis: { host: REDIS_HOST, port: REDIS_PORT, keyPrefix: redisPrefix },
      },
      client: { ...client, idempotencyKeys: true },
    });
  }
  return configs;
}

/** SoakRow is the exactly-once soak's outcome, as stored in the JSON. */
interface SoakRow {
  readonly keys: number;
  readonly copies: number;
  readonly replicas: number;
  readonly replica_processes: number;
  readonly keys_in_flight: number;
  readonly handler_delay_ms: number;
  readonly calls: number;
  readonly ok: number;
  /** fresh: answers without `idempotency-replayed` (the copy whose handler ran). */
  readonly fresh: number;
  /** replayed: duplicates answered from the stored outcome (`idempotency-replayed: true`). */
  readonly replayed: number;
  readonly errors: number;
  readonly errors_by_code: Readonly<Record<string, number>>;
  readonly first_error: string | null;
  /** handler_executions: handler runs for this run's keys, summed over replicas. */
  readonly handler_executions: number;
  readonly exactly_once: boolean;
  readonly keys_never_executed: number;
  readonly keys_executed_more_than_once: number;
  readonly keys_without_fresh_answer: number;
  readonly keys_with_several_fresh_answers: number;
  /** events: idempotency events over the soak, summed over replicas (claimed, waiting, replayed, conflict...). */
  readonly events: Readonly<Record<string, number>>;
  readonly executions_by_replica: Readonly<Record<string, number>>;
  readonly elapsed_s: number | null;
  readonly calls_per_s: number | null;
  readonly keys_per_s: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly max_ms: number | null;
  readonly client_cpu_us_per_call: number | null;
  readonly server_cpu_us_per_call: number | null;
  readonly other_load_cores: number | null;
}

interface SoakSetup {
  /** servers: child → the replica names it hosts. */
  readonly servers: ReadonlyArray<{ child: ChildHandle; names: string[] }>;
  readonly client: ChildHandle;
  readonly clientNames: readonly string[];
  readonly processes: number;
}

async function startSoak(
  servers: ReadonlyArray<{ child: ChildHandle; names: string[] }>,
  client: ChildHandle,
  redisPrefix: string,
): Promise<SoakSetup> {
  const spec = (name: string): PairedServerSpec => ({
    name,
    service: "orders",
    idempotency: "redis",
    redis: { host: REDIS_HOST, port: REDIS_PORT, keyPrefix: redisPrefix },
    ttlMs: TTL_MS,
    log: { kind: "off" },
    handlerDelayMs: SOAK_HANDLER_MS,
    countKeys: true,
  });
  const readies = await Promise.all(
    servers.map((s) =>
      s.child.call<ServerChildReady>("init", { servers: s.names.map(spec) }, INIT_TIMEOUT_MS),
    ),
  );
  const addresses = new Map(readies.flatMap((r) => r.servers.map((s) => [s.name, s.address])));
  const names = servers.flatMap((s) => s.names);
  const clients: PairedClientSpec[] = names.map((n) => ({
    name: `soak-${n}`,
    service: "orders",
    target: addresses.get(n) as string,
    idempotencyKeys: true,
    log: { kind: "off" },
  }));
  await client.call("init", { clients }, INIT_TIMEOUT_MS);
  return {
    servers,
    client,
    clientNames: clients.map((c) => c.name),
    processes: new Set(servers.map((s) => s.child)).size,
  };
}

async function runSoak(
  setup: SoakSetup,
  keys: number,
  warmupKeys: number,
  log: (l: string) => void,
) {
  const run = randomUUID().slice(0, 8);
  const soakArgs = (r: string, n: number) => ({
    clients: setup.clientNames,
    run: r,
    keys: n,
    copies: COPIES,
    keysInFlight: SOAK_KEYS_IN_FLIGHT,
    timeoutMs: SOAK_TIMEOUT_MS,
  });
  const budget = (n: number) => 30_000 + n * COPIES * 5;
  // Warm-up soak (its own keys, not counted): connections, JIT, Redis scripts loaded.
  await setup.client.call<SoakResult>("soak", soakArgs(`${run}w`, warmupKeys), budget(warmupKeys));
  const children = [...new Set(setup.servers.map((s) => s.child))];
  const before = await Promise.all(children.map((c) => c.call<unknown>("mark-begin")));
  void before;
  const sys0 = readCpuTimes();
  const own0 = process.cpuUsage();
  log(`[idempotency soak] ${keys} keys × ${COPIES} copies over ${REPLICAS} replicas...`);
  const res = await setup.client.call<SoakResult>("soak", soakArgs(run, keys), budget(keys));
  const windows = await Promise.all(children.map((c) => c.call<ServerWindow>("mark-end")));
  const sys1 = readCpuTimes();
  const own1 = process.cpuUsage(own0);
  const counts = await Promise.all(children.map((c) => c.call<KeyCounts>("key-counts")));
  const replicaNames = new Set(setup.servers.flatMap((s) => s.names));

  // Handler executions per key of this run, over all replicas.
  const prefix = soakKey(run, 0).slice(0, -1);
  const perKey = new Map<string, number>();
  const byReplica: Record<string, number> = {};
  for (const kc of counts) {
    for (const s of kc.servers) {
      if (!replicaNames.has(s.name)) {
        continue;
      }
      for (const [k, n] of Object.entries(s.perKey)) {
        if (k.startsWith(prefix)) {
          perKey.set(k, (perKey.get(k) ?? 0) + n);
          byReplica[s.name] = (byReplica[s.name] ?? 0) + n;
        }
      }
    }
  }
  let executions = 0;
  let never = 0;
  let several = 0;
  for (let i = 0; i < keys; i++) {
    const n = perKey.get(soakKey(run, i)) ?? 0;
    executions += n;
    if (n === 0) {
      never++;
    } else if (n > 1) {
      several++;
    }
  }
  // Idempotency events of the soak (the warm-up's are in `before`): sum the deltas over replicas.
  const events: Record<string, number> = {};
  for (const [ci, w] of windows.entries()) {
    const b = (before[ci] ?? []) as ServerWindow["counters"];
    for (const c of w.counters) {
      if (!replicaNames.has(c.name)) {
        continue;
      }
      const prev = b.find((x) => x.name === c.name);
      for (const [t, n] of Object.entries(c.events)) {
        const d = n - (prev?.events[t] ?? 0);
        if (d !== 0) {
          events[t] = (events[t] ?? 0) + d;
        }
      }
    }
  }
  const serverCpuUs = windows.reduce((a, w) => a + w.cpuUs, 0);
  const secs = res.elapsedMs / 1000;
  const row: SoakRow = {
    keys,
    copies: COPIES,
    replicas: REPLICAS,
    replica_processes: setup.processes,
    keys_in_flight: SOAK_KEYS_IN_FLIGHT,
    handler_delay_ms: SOAK_HANDLER_MS,
    calls: res.calls,
    ok: res.ok,
    fresh: res.fresh,
    replayed: res.replayed,
    errors: res.errors,
    errors_by_code: res.errorsByCode,
    first_error: res.firstError ?? null,
    handler_executions: executions,
    exactly_once: executions === keys && never === 0 && several === 0,
    keys_never_executed: never,
    keys_executed_more_than_once: several,
    keys_without_fresh_answer: res.keysWithoutFresh,
    keys_with_several_fresh_answers: res.keysWithSeveralFresh,
    events,
    executions_by_replica: byReplica,
    elapsed_s: rnd(secs, 2),
    calls_per_s: rnd(res.calls / secs, 0),
    keys_per_s: rnd(keys / secs, 0),
    p50_ms: rnd(res.latencyMs.p50, 2),
    p99_ms: rnd(res.latencyMs.p99, 2),
    max_ms: rnd(res.latencyMs.max, 2),
    client_cpu_us_per_call: rnd(res.cpuUs / res.calls, 1),
    server_cpu_us_per_call: rnd(serverCpuUs / res.calls, 1),
    other_load_cores:
      sys0 === undefined || sys1 === undefined
        ? null
        : rnd(otherCores(sys0, sys1, res.cpuUs + serverCpuUs + own1.user + own1.system), 2),
  };
  return row;
}

function cpuTable(rows: readonly PairedRow[]): string {
  return sharedCpuTable(rows, {
    headers: ["Redis CPU µs/call", "store events/call"],
    cells: (r) => [
      f(r.redis_cpu_us_per_call, 1),
      Object.entries(r.events_per_call)
        .map(([k, v]) => `${k} ${f(v, 2)}`)
        .join(", ") || "–",
    ],
  });
}

function soakTable(s: SoakRow): string {
  const ev = (t: string) => String(s.events[t] ?? 0);
  return mdTable(
    [
      "keys",
      "calls",
      "ok",
      "fresh answers",
      "replayed answers",
      "errors",
      "**handler executions**",
      "keys run 0× / >1×",
      "waits",
      "conflicts",
      "calls/s",
      "p50 / p99 ms",
      "CPU µs/call client / servers",
      "other load",
    ],
    [
      [
        String(s.keys),
        String(s.calls),
        String(s.ok),
        String(s.fresh),
        String(s.replayed),
        String(s.errors),
        String(s.handler_executions),
        `${s.keys_never_executed} / ${s.keys_executed_more_than_once}`,
        ev("waiting"),
        ev("conflict"),
        f(s.calls_per_s),
        `${f(s.p50_ms, 2)} / ${f(s.p99_ms, 2)}`,
        `${f(s.client_cpu_us_per_call)} / ${f(s.server_cpu_us_per_call)}`,
        f(s.other_load_cores, 2),
      ],
    ],
  );
}

export const idempotency: LabSuite = {
  lab: true,
  name: "idempotency",
  title: "Idempotency: CPU cost per call, and exactly-once across replicas",
  notes: [
    `- (a) Unary \`example.orders.v1.OrderService/CreateOrder\` (side-effecting: no idempotency level, so the client's auto mode sends a UUIDv4 \`idempotency-key\` with every call), trivial handler, ${IN_FLIGHT} calls in flight (closed loop), one mesh transport → one mesh server, client and server in separate processes, \`logger: false\` on both sides, compression off. Baseline: \`idempotency: false\` server + \`idempotencyKeys: false\` client. Every key is new, so each call claims, runs and stores (no replays).`,
    "- Each configuration has its own server and client process (quick runs: all configurations share one server and one client process); the processes stay up and configurations are loaded one at a time, rotating the order every repetition. A configuration's first window follows a warm-up (2000 calls, at most 5 s; quick: 300 calls, at most 0.6 s), later ones a 0.3 s pre-roll (quick: 0.1 s).",
    "- CPU µs/call is process CPU (user + system) over the window divided by successful calls; the ratio is computed per repetition against the baseline window of the same repetition, and the median (min–max) is shown, with the ratio of the medians next to it. On a machine whose other load (last column) is well above 0, CPU per call swings with contention: trust the ratios more than the absolute figures, and neither much when the two ratio figures disagree. Redis CPU µs/call is the Redis server's CPU (INFO cpu) over the window per call: it is not in the totals, and includes anything else using that Redis.",
    `- Memory store: \`createMemoryIdempotencyStore()\` defaults (10k entries LRU, evicting at this rate); Redis store: \`createRedisIdempotencyStore({ connection })\` on ${REDIS_HOST}:${REDIS_PORT}, ttlMs ${TTL_MS / 60_000} min, the run's keys deleted at the end.`,
    `- (b) Soak: ${REPLICAS} mesh servers (own processes; quick runs: own servers in one process) sharing one Redis store; ${COPIES} transports, each to one replica; every key is sent ${COPIES}× at once with an explicit \`idempotency-key\` and the same payload, copy i to replica (key + i) mod ${REPLICAS}, ${SOAK_KEYS_IN_FLIGHT} keys in flight; the handler counts executions per key and waits ${SOAK_HANDLER_MS} ms so that copies overlap (defaults: onConcurrent "wait", client retries on). A warm-up soak with other keys runs first. Exactly-once holds when handler executions == keys with none run twice.`,
  ],
  configs: () => [],
  budgetMs: (quick) => (quick ? 60_000 : 300_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const quick = ctx.quick;
    const timing = quick ? TIMING.quick : TIMING.full;
    const failures: string[] = [];
    const reachable = await redisReachable();
    let redisNote = "used";
    if (reachable !== true) {
      if (process.env[REQUIRE_SERVICES_ENV] === "1") {
        failures.push(`${reachable}; ${REQUIRE_SERVICES_ENV}=1 requires it`);
      }
      redisNote = `skipped: ${reachable}`;
      ctx.log(
        `suite idempotency: ${reachable} — SKIPPING the Redis store configuration and the exactly-once soak` +
          (process.env[REQUIRE_SERVICES_ENV] === "1"
            ? ` (${REQUIRE_SERVICES_ENV}=1: failing)`
            : ""),
      );
    }
    const redisOk = reachable === true;
    const runId = randomUUID().slice(0, 8);
    const prefix = `connect-mesh-bench:idempotency:${runId}:`;
    const configs = cpuConfigs(redisOk ? `${prefix}cpu:` : undefined);
    const children = new Children();
    let admin: Redis | undefined;
    let rows: PairedRow[] = [];
    let soak: SoakRow | undefined;
    try {
      admin = redisOk ? openAdmin() : undefined;
      // Soak children are forked first, so their start-up overlaps the others'.
      let soakServers: Array<{ child: ChildHandle; names: string[] }> | undefined;
      let soakClient: ChildHandle | undefined;
      const replicaNames = Array.from({ length: REPLICAS }, (_, i) => `r${i}`);
      if (redisOk && !quick) {
        soakServers = replicaNames.map((n) => ({
          child: children.fork("server", `replica ${n}`),
          names: [n],
        }));
        soakClient = children.fork("client", "soak client");
      }
      const t0 = performance.now();
      const bound = await startConfigs(children, configs, { share: quick });
      if (redisOk && quick) {
        // Quick runs: the replicas are three more servers in the shared server process.
        const first = bound[0];
        if (first !== undefined) {
          soakServers = [{ child: first.server, names: replicaNames }];
          soakClient = first.client;
        }
      }
      const soakSetup =
        soakServers !== undefined && soakClient !== undefined
          ? await startSoak(soakServers, soakClient, `${prefix}soak:`)
          : undefined;
      ctx.log(
        `suite idempotency: ${configs.length} configurations, ${timing.reps} interleaved reps of ${timing.windowMs} ms (start-up ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
      const run = await runInterleaved("idempotency", bound, timing, {
        ...(admin === undefined ? {} : { redis: admin }),
        log: ctx.log,
      });
      rows = aggregate(bound, run, 0, IN_FLIGHT);
      for (const r of rows) {
        for (const msg of r.failures) {
          failures.push(`${r.config}: ${msg}`);
        }
        if (r.errors > 0) {
          failures.push(
            `${r.config}: ${r.errors} failed calls (${r.samples.find((s) => s.firstError)?.firstError})`,
          );
        }
      }
      if (soakSetup !== undefined) {
        soak = await runSoak(
          soakSetup,
          quick ? SOAK_KEYS.quick : SOAK_KEYS.full,
          quick ? SOAK_WARMUP_KEYS.quick : SOAK_WARMUP_KEYS.full,
          ctx.log,
        );
        ctx.log(
          `[idempotency soak] ${soak.exactly_once ? "EXACTLY ONCE" : "NOT EXACTLY ONCE"}: ` +
            `handler executions ${soak.handler_executions} for ${soak.keys} keys ` +
            `(${soak.keys_never_executed} never, ${soak.keys_executed_more_than_once} more than once); ` +
            `${soak.replayed} replayed, ${soak.fresh} fresh, ${soak.errors} errors, ` +
            `${soak.events.waiting ?? 0} waits, ${soak.events.conflict ?? 0} conflicts, ${soak.calls_per_s} calls/s`,
        );
      }
    } finally {
      await children.close();
      if (admin !== undefined) {
        const n = await deleteKeys(admin, prefix).catch(() => -1);
        ctx.log(`suite idempotency: deleted ${n} Redis keys under ${prefix}`);
        admin.disconnect();
      }
    }

    const goals: Goal[] = [];
    if (soak !== undefined) {
      goals.push({
        goal: "exactly once: handler executions == keys (none run twice)",
        target: `${soak.keys}`,
        value: `${soak.handler_executions} (${soak.keys_never_executed} never, ${soak.keys_executed_more_than_once} twice or more)`,
        met: soak.exactly_once,
      });
      goals.push({
        goal: "every duplicate answered by replay",
        target: `${soak.keys * (COPIES - 1)} replayed`,
        value: `${soak.replayed} replayed, ${soak.errors} errors`,
        met: soak.replayed === soak.keys * (COPIES - 1) && soak.errors === 0,
      });
    }
    const md: string[] = [];
    md.push("**(a) CPU per call, ratio to idempotency off** (same run, interleaved repetitions)");
    md.push("");
    md.push(cpuTable(rows));
    md.push("");
    md.push("**(b) Exactly-once soak across replicas** (Redis store)");
    md.push("");
    if (soak === undefined) {
      md.push(`Skipped: Redis ${redisNote}.`);
    } else {
      md.push(soakTable(soak));
      md.push("");
      md.push(
        `**${soak.exactly_once ? "Exactly once: yes" : "Exactly once: NO"}** — ${soak.handler_executions} handler executions for ${soak.keys} keys ` +
          `(by replica: ${Object.entries(soak.executions_by_replica)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}); idempotency events: ${Object.entries(soak.events)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}.`,
      );
    }
    return {
      method: {
        cpu: {
          ...timing,
          configs: configs.map((c) => ({ label: c.label, server: c.server, client: c.client })),
        },
        processes: quick
          ? "shared (one server and one client process)"
          : "one server and one client process per configuration",
        soak: {
          keys: quick ? SOAK_KEYS.quick : SOAK_KEYS.full,
          warmup_keys: quick ? SOAK_WARMUP_KEYS.quick : SOAK_WARMUP_KEYS.full,
          copies: COPIES,
          replicas: REPLICAS,
          keys_in_flight: SOAK_KEYS_IN_FLIGHT,
          handler_delay_ms: SOAK_HANDLER_MS,
          timeout_ms: SOAK_TIMEOUT_MS,
        },
        redis: `${REDIS_HOST}:${REDIS_PORT} ${redisNote}`,
      },
      results: { cpu: rows, soak: soak ?? null, redis: redisNote },
      goals,
      failures,
      markdown: md.join("\n"),
    };
  },
};
