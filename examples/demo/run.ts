import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { createClient } from "@connectrpc/connect";
import { pino } from "pino";
import {
  createEtcdRegistry,
  createIdentitySource,
  createLogDestination,
  createMeshRegistry,
  createMeshTransport,
  createMetrics,
  type IdentitySource,
  type RunningAdmin,
  type ServiceRegistry,
  serveAdmin,
} from "../../src/index.js";
import { OrderService } from "../order-service.js";
import { createFleet, type Fleet } from "./fleet.js";
import { makeDemoIdentities } from "./identities.js";
import { runLoad } from "./load.js";
import type { DemoOptions } from "./options.js";
import { type OverloadResult, runOverloadPhase } from "./overload.js";
import {
  CLIENT_SPIFFE_ID,
  REPLICA_SPIFFE_ID,
  type ReplicaConfig,
  type ReplicaRole,
  ROLE_TEXT,
  SERVICE,
} from "./protocol.js";
import { type QueuedCallsRun, startQueuedCalls } from "./queued.js";
import { RunStats } from "./run-stats.js";
import { createStatus } from "./status.js";
import { printSummary } from "./summary.js";

const CALL_TIMEOUT_MS = 5_000;
const CAPACITY_TEXT = "40 calls/s (4 workers, 100 ms a call)";

/** roleOf gives replica i (0-based) its part in the demo. */
function roleOf(i: number): ReplicaRole {
  return (["slow", "flaky", "killed"] as const)[i] ?? "steady";
}

/**
 * runDemo runs the whole demo and resolves with the exit code. Child
 * processes and the temp dir are cleaned up on every way out: normal end,
 * error, Ctrl-C (SIGINT, SIGTERM), or process.exit from anywhere.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const out = process.stdout;
  const runDir = mkdtempSync(join(tmpdir(), "connect-mesh-demo-"));
  const runId = basename(runDir);
  const logFile = resolve(opts.logFile);
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, "");
  mkdirSync(join(runDir, "executions"));

  const registryConfig: ReplicaConfig["registry"] =
    opts.etcd === undefined
      ? { kind: "mesh", dir: join(runDir, "registry") }
      : { kind: "etcd", endpoints: opts.etcd, prefix: `/connect-mesh-demo/${runId}` };
  const storeConfig: ReplicaConfig["store"] =
    opts.redis === undefined
      ? { kind: "file", dir: join(runDir, "idempotency") }
      : { kind: "redis", url: opts.redis, keyPrefix: `connect-mesh-demo:${runId}:` };

  // --mtls: certificates from a dev CA made now, as PEM files in the run dir.
  const identities = opts.mtls ? await makeDemoIdentities(join(runDir, "identity")) : undefined;

  const stats = new RunStats();
  const fleet: Fleet = createFleet({
    configFor: (name, role, incarnation) => ({
      name,
      role,
      incarnation,
      logFile,
      registry: registryConfig,
      store: storeConfig,
      ordersDir: join(runDir, "orders"),
      executionsFile: join(runDir, "executions", `${name}-${incarnation}.log`),
      ...(identities === undefined ? {} : { identity: identities.replica }),
    }),
    onMessage: (replica, inc, m) => {
      if (m.type === "registry" && m.event !== "registered") {
        stats.note(`${replica.name}#${inc.number} registry ${m.event}`);
      }
    },
    onExit: (replica, inc, code, signal) => {
      if (inc.state === "exited") {
        stats.note(`${replica.name}#${inc.number} exited unexpectedly (${signal ?? code})`);
      }
    },
  });
  stats.nameOf = (address) => fleet.addressOwner(address) ?? address;

  // Cleanup that must happen however we leave.
  let status: ReturnType<typeof createStatus> | undefined;
  const cleanupSync = () => {
    fleet.killAllSync();
    status?.restoreCursor();
    rmSync(runDir, { recursive: true, force: true });
  };
  process.once("exit", cleanupSync);
  const stopLoad = new AbortController();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      // Second Ctrl-C: leave now (the exit handler kills the replicas).
      process.exit(130);
    }
    interrupted = true;
    out.write(`\n${signal}: stopping the load; Ctrl-C again to quit at once\n`);
    stopLoad.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  const destination = createLogDestination({ dest: logFile });
  // debug: one line per attempt as well as per call, and the retry events.
  const logger = pino({ level: "debug", base: { proc: "client", pid: process.pid } }, destination);

  const target = opts.etcd === undefined ? `mesh:///${SERVICE}` : `etcd:///${SERVICE}`;
  out.write(
    `connect-mesh demo: ${opts.replicas} replicas of ${OrderService.typeName}, each its own process, behind ${target}\n`,
  );
  out.write(
    `  registry     ${registryConfig.kind === "mesh" ? `embedded mesh registry in ${registryConfig.dir}` : `etcd at ${registryConfig.endpoints.join(",")} (prefix ${registryConfig.prefix})`}\n`,
  );
  out.write(
    `  idempotency  ${storeConfig.kind === "file" ? `file store in ${storeConfig.dir}, shared by the replicas` : `Redis at ${storeConfig.url} (prefix ${storeConfig.keyPrefix})`}\n`,
  );
  out.write(`  JSON logs    ${displayPath(logFile)} (every process appends to it)\n`);
  if (identities !== undefined) {
    out.write(
      `  mTLS         dev CA spiffe://${identities.trustDomain}: replicas ${REPLICA_SPIFFE_ID}, client ${CLIENT_SPIFFE_ID} (pinned to the replicas' ID)\n`,
    );
  }

  let registry: ServiceRegistry | undefined;
  let clientIdentity: IdentitySource | undefined;
  let transport: ReturnType<typeof createMeshTransport> | undefined;
  let queued: QueuedCallsRun | undefined;
  let admin: RunningAdmin | undefined;
  try {
    out.write("starting replicas...\n");
    const names = Array.from({ length: opts.replicas }, (_, i) => `replica-${i + 1}`);
    await Promise.all(names.map((name, i) => fleet.start(name, roleOf(i))));
    for (const r of fleet.replicas.values()) {
      const inc = r.incarnations[0];
      out.write(
        `  ${r.name.padEnd(10)} pid ${String(inc?.pid).padEnd(7)} ${String(inc?.address).padEnd(16)} ${ROLE_TEXT[r.role]}\n`,
      );
    }

    registry =
      registryConfig.kind === "mesh"
        ? createMeshRegistry({ dir: registryConfig.dir, pollMs: 250 })
        : createEtcdRegistry({
            endpoints: registryConfig.endpoints,
            prefix: registryConfig.prefix,
          });
    clientIdentity =
      identities === undefined ? undefined : createIdentitySource({ ...identities.client, logger });
    const metrics = opts.adminPort === undefined ? undefined : await createMetrics();
    transport = createMeshTransport({
      target,
      registries: [registry],
      ...(clientIdentity === undefined
        ? {}
        : { identity: clientIdentity, serverIdentities: [REPLICA_SPIFFE_ID] }),
      ...(metrics === undefined ? {} : { metrics }),
      defaultTimeoutMs: CALL_TIMEOUT_MS,
      // Ejections last 2 s, growing to 6 s (defaults 30 s and 300 s), so that
      // a short run shows the flaky replica ejected, let back, ejected again.
      outlierDetection: { baseEjectionMs: 2_000, maxEjectionMs: 6_000 },
      // The default breaker judges a method after 20 attempts. At start-up the
      // flaky replica's failures come back in a millisecond while successes
      // take tens, so the first 20 outcomes can be half failures and the
      // CreateOrder breaker would open for 5 s although every call succeeds
      // on retry. 200 attempts give a fair sample; the breaker still opens
      // when most of the service fails (and on 10 failures in a row). The
      // SIGKILLed replica's lost connections do not count: they are outlier
      // ejection's business, not the method's.
      circuitBreaker: { minimumCalls: 200 },
      logger,
      onEvent: stats.onEvent,
    });
    if (opts.adminPort !== undefined) {
      // The dashboard watches the same transport: open it while the run goes on.
      admin = await serveAdmin({
        port: opts.adminPort,
        transports: [transport],
        ...(metrics === undefined ? {} : { metrics }),
        channelz: true,
      });
      out.write(`  dashboard    ${admin.url} (live; /metrics, /api/state, gRPC channelz)\n`);
    }
    const client = createClient(OrderService, transport);
    // Wait until the balancer knows every replica (registrations are async).
    const seen = Date.now();
    while (stats.endpoints < opts.replicas && Date.now() - seen < 10_000) {
      await client.getOrder({ id: "warm-up" }).catch(() => {});
      await sleep(50);
    }
    stats.reset();

    out.write(
      `load: ${opts.concurrency} calls in flight for ${opts.durationS} s, 60% CreateOrder (idempotency key added by the transport) and 40% GetOrder; deadline ${CALL_TIMEOUT_MS / 1_000} s, default retry policy\n`,
    );
    queued = startQueuedCalls({
      transport,
      logger: pino({ level: "info", base: { proc: "worker", pid: process.pid } }, destination),
    });
    out.write(`queued calls: ${queued.description}\n`);
    out.write("\n");

    status = createStatus({
      out,
      stats,
      fleet,
      durationS: opts.durationS,
      header: `connect-mesh demo — ${target}`,
    });
    stats.reset();
    status.start();

    // The script of faults: replica-3 is SIGKILLed at 35% of the run (later,
    // up to 70%, while it has served nothing yet: on a busy host the first
    // calls can take that long) and a new process is started in its place at
    // once (it takes a second or more to come up and register).
    const killAtMs = opts.durationS * 350;
    const killByMs = opts.durationS * 700;
    const loadStartedAt = Date.now();
    const timers: NodeJS.Timeout[] = [];
    let restart: Promise<unknown> = Promise.resolve();
    const servedAny = (name: string): boolean => {
      const inc = fleet.replicas.get(name)?.incarnations.at(-1);
      return Object.values(inc?.stats?.requests ?? {}).some((n) => n > 0);
    };
    const killReplica3 = () => {
      if (!servedAny("replica-3") && Date.now() - loadStartedAt < killByMs) {
        timers.push(setTimeout(killReplica3, 100));
        return;
      }
      const inc = fleet.kill("replica-3");
      if (inc === undefined) return;
      status?.note(`replica-3 SIGKILLed (pid ${inc.pid}); starting a new process`);
      restart = fleet.start("replica-3", "killed").then(
        (address) => {
          const inc2 = fleet.replicas.get("replica-3")?.incarnations.at(-1);
          status?.note(`replica-3 restarted: pid ${inc2?.pid} serving at ${address}, registered`);
        },
        (e: unknown) => status?.note(`replica-3 restart failed: ${String(e)}`),
      );
    };
    timers.push(setTimeout(killReplica3, killAtMs));
    timers.push(setTimeout(() => stopLoad.abort(), opts.durationS * 1_000));

    await runLoad({
      client,
      stats,
      concurrency: opts.concurrency,
      signal: stopLoad.signal,
      timeoutMs: CALL_TIMEOUT_MS,
    });
    const loadS = stats.elapsedS();
    const loadEndedAt = performance.now();
    for (const t of timers) clearTimeout(t);
    status.stop();
    await queued?.stop();
    status = undefined;
    await admin?.close();
    await transport.close();
    await registry.close();
    out.write("\nstopping replicas...\n");
    await fleet.stop(5_000);
    await restart;
    destination.flushSync();

    let overload: OverloadResult | undefined;
    if (opts.overloadS > 0 && !interrupted) {
      out.write(
        `overload phase: one server doing ${CAPACITY_TEXT}, adaptive concurrency limit on; 0.5x its capacity, a ${opts.overloadS} s burst at 3x, 0.5x again...\n`,
      );
      overload = await runOverloadPhase(opts.overloadS, stopLoad.signal);
    }

    const code = await printSummary({
      out,
      opts,
      stats,
      fleet,
      loadS,
      logFile: displayPath(logFile),
      logPath: logFile,
      executions: readExecutions(join(runDir, "executions")),
      loadEndedAt,
      queued,
      interrupted,
      overload,
    });
    return interrupted ? 130 : code;
  } catch (e) {
    status?.stop();
    out.write(`\ndemo: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await queued?.stop(0).catch(() => {});
    await admin?.close().catch(() => {});
    await transport?.close().catch(() => {});
    clientIdentity?.close();
    await registry?.close().catch(() => {});
    await fleet.stop(2_000);
    try {
      destination.flushSync();
    } catch {
      // Nothing more to flush.
    }
    cleanupSync();
    process.off("exit", cleanupSync);
  }
}

/** Executions maps each idempotency key to the processes that ran CreateOrder for it. */
export type Executions = ReadonlyMap<string, readonly string[]>;

function readExecutions(dir: string): Executions {
  const m = new Map<string, string[]>();
  for (const f of readdirSync(dir).sort()) {
    for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
      const [key, by] = line.split("\t");
      if (key === undefined || by === undefined) continue;
      const list = m.get(key);
      if (list === undefined) m.set(key, [by]);
      else list.push(by);
    }
  }
  return m;
}

function displayPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r.startsWith("..") ? p : r;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
