// Suite "mirror": what request mirroring costs the primary. A primary mesh
// server and a shadow mesh server (one replica child each, fault-injected
// service times) are driven by an open-loop mesh client in the runner's
// process, which mirrors every call to a shadow that is healthy, 10x slower,
// stalled, or down, or mirrors nothing. Configurations are interleaved
// round-robin over repetitions, each with a fresh transport. (Client
// children were tried first: on the loaded host their start-up alone broke
// the quick budget.)

import { createServer } from "node:net";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createMeshTransport } from "../../src/index.js";
import {
  fmt,
  goal,
  type LabContext,
  type LabResult,
  type LabSuite,
  mdTable,
  type ReplicaGroup,
  r,
  sleep,
} from "../lib/lab/lab.js";
import { Samples } from "../lib/stats.js";

/** SERVICE_MS is the primary's fault-injected service time. */
const SERVICE_MS = 5;
const RATE = 100;
const DEADLINE_MS = 2_000;
const MAX_IN_FLIGHT = 16;
const MIRROR_TIMEOUT_MS = 1_000;
/** SHARE of calls mirrored: a usual shadow share, with enough mirrors (25/s) that a stalled shadow (25 wanted in flight) runs into the bound. */
const SHARE = 0.25;
/** STALLED_MS outlasts the mirror deadline: every mirror holds its slot until it times out. */
const STALLED_MS = 10_000;

interface Config {
  readonly name: string;
  /** shadow: the shadow's service time in ms, "down" (nothing listens), or none. */
  readonly shadow: number | "down" | undefined;
}

const CONFIGS: readonly Config[] = [
  { name: "no mirror", shadow: undefined },
  { name: "healthy shadow", shadow: SERVICE_MS },
  { name: "10x slower shadow", shadow: SERVICE_MS * 10 },
  { name: "stalled shadow", shadow: STALLED_MS },
  { name: "down shadow", shadow: "down" },
];

/** shadowAttempts reads how many calls reached the shadow replica so far. */
async function shadowAttempts(group: ReplicaGroup): Promise<number> {
  const counts = await group.counts();
  return counts.replicas.reduce((sum, x) => sum + x.attempts, 0);
}

/** freePort returns a loopback port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface Window {
  readonly windowS: number;
  readonly started: number;
  readonly ok: number;
  readonly errors: number;
  readonly errorsByCode: Record<string, number>;
  readonly latency: { p50: number; p99: number };
}

/**
 * startLoad starts `rps` GetOrder calls per second (Poisson arrivals, open
 * loop: a slow answer never delays the next start) until stopped; measure()
 * opens the window in which calls are counted, by their start time.
 */
function startLoad(
  client: Client<typeof OrderService>,
  rps: number,
  deadlineMs: number,
): { measure(): { end(): Window }; stop(): Promise<void> } {
  let seq = 0;
  let running = true;
  const pending = new Set<Promise<void>>();
  let current:
    | { started: number; ok: number; errors: number; codes: Record<string, number>; lat: Samples }
    | undefined;
  const one = () => {
    const w = current;
    if (w !== undefined) w.started++;
    const t = performance.now();
    const p = client
      .getOrder({ id: `o-${seq++}` }, { timeoutMs: deadlineMs })
      .then(
        () => {
          if (w === undefined) return;
          w.ok++;
          w.lat.add(performance.now() - t);
        },
        (e: unknown) => {
          if (w === undefined) return;
          w.errors++;
          const name = Code[ConnectError.from(e).code] ?? "unknown";
          w.codes[name] = (w.codes[name] ?? 0) + 1;
        },
      )
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const gapMs = 1000 / rps;
  let nextAt = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    while (running && nextAt <= now) {
      // 1 - random() is in (0, 1]: exponential gaps, as independent users make.
      nextAt += -Math.log(1 - Math.random()) * gapMs;
      if (pending.size < 256) one();
    }
  }, 2);
  return {
    measure() {
      const w = { started: 0, ok: 0, errors: 0, codes: {}, lat: new Samples(1 << 14) };
      const at = performance.now();
      current = w;
      return {
        end(): Window {
          const windowS = (performance.now() - at) / 1000;
          current = undefined;
          const x = w.lat.summary();
          return {
            windowS,
            started: w.started,
            ok: w.ok,
            errors: w.errors,
            errorsByCode: w.codes,
            latency: { p50: x.p50, p99: x.p99 },
          };
        },
      };
    },
    async stop() {
      running = false;
      clearInterval(ticker);
      await Promise.all([...pending]);
    },
  };
}

interface Run {
  readonly config: string;
  readonly rep: number;
  readonly window_s: number;
  readonly started: number;
  readonly ok: number;
  readonly errors: number;
  readonly success_rate: number | null;
  readonly rps: number | null;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
  readonly mirror_sent: number;
  readonly mirror_dropped: number;
  readonly mirror_failed: number;
  readonly mirror_max_in_flight: number;
  readonly shadow_calls: number;
  readonly other_load_cores: number | null;
}

function median(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
}

export const mirror: LabSuite = {
  lab: true,
  name: "mirror",
  title:
    "Request mirroring: the primary with no mirror and with a healthy, 10x slower, stalled or down shadow",
  notes: [
    `- Two connect-mesh servers, one replica child each (loopback), serve example.orders.v1.OrderService/GetOrder: the primary with a ${SERVICE_MS} ms fault-injected service time, the shadow with ${SERVICE_MS} ms (healthy), ${SERVICE_MS * 10} ms (10x slower) or ${STALLED_MS} ms (stalled: every mirror runs into its ${MIRROR_TIMEOUT_MS} ms deadline), set at run time through its fault injector; "down" is a loopback port nothing listens on.`,
    `- The client, a connect-mesh transport in the runner's process, starts ${RATE} calls/s (open loop, Poisson arrivals, ${DEADLINE_MS} ms deadline; retries and breaker off, so latency and success are the raw ones) and mirrors a share of them with \`mirror: { shadow, share: ${SHARE}, maxInFlight: ${MAX_IN_FLIGHT}, timeoutMs: ${MIRROR_TIMEOUT_MS} }\`. (A first full run mirrored every call, share 1: on this host, where the bench got ~0.2 of a core, doubling the client's calls doubled its CPU per primary call and p50 rose 5x whatever the shadow's health; that is the cost of the copies, not of the shadow.)`,
    "- After a warm-up of both servers (mirrored load, not measured), configurations are interleaved round-robin (the order rotated by one per repetition), a fresh transport per run. Figures are medians over repetitions (max for in flight). p50/p99 are of the primary's successful calls. Mirror counts come from the transport's mirror events; mirrors in flight is the most outstanding at once (every shadow call the client has started and not seen end, so the shadow never holds more); shadow got/s counts the calls that reached the shadow server.",
    "- Ran on the shared 2-core host beside the other helpers' work (other load in cores per row): read p99 differences against the min–max spread of the same row.",
  ],
  configs: () => [],
  budgetMs: (quick) => (quick ? 58_000 : 240_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const { quick, lab, log } = ctx;
    const reps = quick ? 1 : 3;
    const warmupMs = quick ? 300 : 1_500;
    const durationMs = quick ? 2_000 : 6_000;
    const failures: string[] = [];
    const skipped: string[] = [];
    const warnings: string[] = [];
    const timeBudgetMs = (quick ? 58_000 : 240_000) - 8_000;
    const t0 = performance.now();

    const downAddress = `127.0.0.1:${await freePort()}`;
    const runs: Run[] = [];
    const primaryChild = lab.forkReplica("replica:primary");
    const shadowChild = lab.forkReplica("replica:shadow");
    const [primaryGroup, shadowGroup] = await Promise.all([
      lab.initReplica(primaryChild, {
        replicas: [{ name: "primary", faults: { default: { delayMs: SERVICE_MS } } }],
      }),
      lab.initReplica(shadowChild, {
        replicas: [{ name: "shadow", faults: { default: { delayMs: SERVICE_MS } } }],
      }),
    ]);
    const primary = primaryGroup.addresses[0] as string;
    const shadowAddress = shadowGroup.addresses[0] as string;

    // Warm both servers (JIT, sessions) with mirrored load before anything is
    // measured: a cold server process on a loaded host misses every deadline.
    {
      const warm = createMeshTransport({
        target: primary,
        acceptCompression: [],
        logger: false,
        retry: false,
        circuitBreaker: false,
        mirror: {
          shadow: shadowAddress,
          share: SHARE,
          maxInFlight: MAX_IN_FLIGHT,
          timeoutMs: MIRROR_TIMEOUT_MS,
        },
      });
      const gen = startLoad(createClient(OrderService, warm), RATE, DEADLINE_MS);
      await sleep(quick ? 2_000 : 5_000);
      await gen.stop();
      await warm.close();
    }

    // Past the budget the rest is left out (reported), never a watchdog kill.
    const runMs = warmupMs + durationMs + 2_500;
    repetitions: for (let rep = 0; rep < reps; rep++) {
      // Rotated per repetition, so no configuration always runs in the same
      // slot (after the same neighbour, at the same point of the host's load).
      const order = CONFIGS.map((_, i) => CONFIGS[(i + rep) % CONFIGS.length] as Config);
      for (const cfg of order) {
        if (performance.now() - t0 + runMs + 3_000 > timeBudgetMs) {
          skipped.push(`${cfg.name} rep ${rep} and later: time budget`);
          break repetitions;
        }
        const shadowTarget =
          cfg.shadow === undefined
            ? undefined
            : cfg.shadow === "down"
              ? downAddress
              : shadowAddress;
        if (typeof cfg.shadow === "number") {
          await shadowGroup.setFaults({ default: { delayMs: cfg.shadow } });
        }
        const counts = { sent: 0, dropped: 0, failed: 0, maxInFlight: 0 };
        const transport = createMeshTransport({
          target: primary,
          acceptCompression: [],
          logger: false,
          // Raw latency and success: no retries, and no breaker to turn a
          // starved warm-up into a window of fast failures.
          retry: false,
          circuitBreaker: false,
          ...(shadowTarget === undefined
            ? {}
            : {
                mirror: {
                  shadow: shadowTarget,
                  share: SHARE,
                  maxInFlight: MAX_IN_FLIGHT,
                  timeoutMs: MIRROR_TIMEOUT_MS,
                },
              }),
          onEvent: (e) => {
            if (e.type === "mirror-sent") {
              counts.sent++;
              counts.maxInFlight = Math.max(counts.maxInFlight, e.inFlight);
            } else if (e.type === "mirror-dropped") counts.dropped++;
            else if (e.type === "mirror-failed") counts.failed++;
          },
        });
        const gen = startLoad(createClient(OrderService, transport), RATE, DEADLINE_MS);
        await sleep(warmupMs);
        const window = gen.measure();
        lab.load.reset();
        counts.maxInFlight = 0;
        const before = { ...counts, shadowAttempts: await shadowAttempts(shadowGroup) };
        await sleep(durationMs);
        const m = window.end();
        const mirrorMax = counts.maxInFlight;
        const otherCores = lab.load.cores();
        const delta = {
          sent: counts.sent - before.sent,
          dropped: counts.dropped - before.dropped,
          failed: counts.failed - before.failed,
          shadowAttempts: (await shadowAttempts(shadowGroup)) - before.shadowAttempts,
        };
        await gen.stop();
        await transport.close();
        const run: Run = {
          config: cfg.name,
          rep,
          window_s: r(m.windowS, 2) ?? 0,
          started: m.started,
          ok: m.ok,
          errors: m.errors,
          success_rate: m.ok + m.errors > 0 ? m.ok / (m.ok + m.errors) : null,
          rps: r(m.ok / m.windowS, 1),
          p50_ms: r(m.latency.p50, 3),
          p99_ms: r(m.latency.p99, 3),
          mirror_sent: delta.sent,
          mirror_dropped: delta.dropped,
          mirror_failed: delta.failed,
          mirror_max_in_flight: mirrorMax,
          shadow_calls: delta.shadowAttempts,
          other_load_cores: r(otherCores, 2),
        };
        runs.push(run);
        log(
          `[mirror] ${cfg.name} #${rep}: ${fmt(run.rps, 0)} ok/s, success ${fmt((run.success_rate ?? 0) * 100, 2)}%, p99 ${fmt(run.p99_ms, 2)} ms, mirrors sent ${run.mirror_sent} dropped ${run.mirror_dropped} failed ${run.mirror_failed}, max in flight ${mirrorMax}, shadow got ${delta.shadowAttempts}, other load ${fmt(otherCores, 2)} cores${m.errors > 0 ? `; errors ${JSON.stringify(m.errorsByCode)}` : ""}`,
        );
        // A starved host can fail a whole window: reported, not a failure.
        if (m.ok === 0) warnings.push(`${cfg.name} rep ${rep}: no call succeeded`);
      }
    }

    const rows = CONFIGS.map((cfg) => {
      const mine = runs.filter((x) => x.config === cfg.name);
      const perS = (f: (x: Run) => number) =>
        median(mine.map((x) => (x.window_s > 0 ? f(x) / x.window_s : null)));
      return {
        config: cfg.name,
        reps: mine.length,
        rps: r(median(mine.map((x) => x.rps)), 1),
        success_rate: r(median(mine.map((x) => x.success_rate)), 5),
        errors: mine.reduce((sum, x) => sum + x.errors, 0),
        p50_ms: r(median(mine.map((x) => x.p50_ms)), 2),
        p99_ms: r(median(mine.map((x) => x.p99_ms)), 2),
        p99_ms_min:
          mine.length === 0
            ? null
            : r(Math.min(...mine.map((x) => x.p99_ms ?? Number.POSITIVE_INFINITY)), 2),
        p99_ms_max: mine.length === 0 ? null : r(Math.max(...mine.map((x) => x.p99_ms ?? 0)), 2),
        mirror_sent_per_s: r(
          perS((x) => x.mirror_sent),
          1,
        ),
        mirror_dropped_per_s: r(
          perS((x) => x.mirror_dropped),
          1,
        ),
        mirror_failed_per_s: r(
          perS((x) => x.mirror_failed),
          1,
        ),
        shadow_calls_per_s: r(
          perS((x) => x.shadow_calls),
          1,
        ),
        mirror_max_in_flight:
          mine.length === 0 ? null : Math.max(...mine.map((x) => x.mirror_max_in_flight)),
        max_in_flight_bound: cfg.shadow === undefined ? null : MAX_IN_FLIGHT,
        other_load_cores: r(median(mine.map((x) => x.other_load_cores)), 2),
      };
    });
    const base = rows[0];
    const byName = (n: string) => rows.find((x) => x.config === n);
    const ratio = (n: string) => {
      const x = byName(n)?.p99_ms;
      return x == null || base?.p99_ms == null || base.p99_ms === 0 ? null : x / base.p99_ms;
    };
    const healthy = byName("healthy shadow");
    const ratioToHealthy = (n: string) => {
      const x = byName(n)?.p99_ms;
      return x == null || healthy?.p99_ms == null || healthy.p99_ms === 0
        ? null
        : x / healthy.p99_ms;
    };
    const successDrop = (n: string) => {
      const x = byName(n)?.success_rate;
      return x == null || base?.success_rate == null ? null : base.success_rate - x;
    };
    const measured = rows.filter(
      (x) => x.mirror_max_in_flight !== null && x.max_in_flight_bound !== null,
    );
    const maxMirrors =
      measured.length === 0 ? null : Math.max(...measured.map((x) => x.mirror_max_in_flight ?? 0));

    const markdown = mdTable(
      [
        "config",
        "ok/s",
        "success",
        "p50 ms",
        "p99 ms (min–max)",
        "mirrors sent/s",
        "dropped/s",
        "failed/s",
        "shadow got/s",
        "mirrors max in flight / bound",
        "other load (cores)",
      ],
      rows.map((x) => [
        x.config,
        fmt(x.rps, 0),
        `${fmt((x.success_rate ?? Number.NaN) * 100, 2)}%`,
        fmt(x.p50_ms, 2),
        `${fmt(x.p99_ms, 2)} (${fmt(x.p99_ms_min, 2)}–${fmt(x.p99_ms_max, 2)})`,
        fmt(x.mirror_sent_per_s, 1),
        fmt(x.mirror_dropped_per_s, 1),
        fmt(x.mirror_failed_per_s, 1),
        fmt(x.shadow_calls_per_s, 1),
        x.max_in_flight_bound === null
          ? "–"
          : `${x.mirror_max_in_flight ?? "–"} / ${x.max_in_flight_bound}`,
        fmt(x.other_load_cores, 2),
      ]),
    );
    const p99Goal = (n: string) =>
      goal(
        `${n}: primary p99 unchanged (± noise)`,
        "≤ 1.25x no mirror",
        ratio(n),
        (v) => v <= 1.25,
        (v) => `${fmt(v, 2)}x`,
      );
    const successGoal = (n: string) =>
      goal(
        `${n}: primary success rate unchanged`,
        "drop ≤ 0.1 pt",
        successDrop(n),
        (v) => v <= 0.001,
        (v) => `${fmt(v * 100, 3)} pt`,
      );
    return {
      method: {
        service_ms: SERVICE_MS,
        rate_rps: RATE,
        arrivals: "poisson",
        deadline_ms: DEADLINE_MS,
        share: SHARE,
        max_in_flight: MAX_IN_FLIGHT,
        mirror_timeout_ms: MIRROR_TIMEOUT_MS,
        stalled_ms: STALLED_MS,
        reps,
        warmup_ms: warmupMs,
        duration_ms: durationMs,
      },
      results: {
        rows,
        runs,
        ...(skipped.length === 0 ? {} : { left_out: skipped }),
        ...(warnings.length === 0 ? {} : { warnings }),
      },
      goals: [
        p99Goal("healthy shadow"),
        p99Goal("10x slower shadow"),
        p99Goal("stalled shadow"),
        p99Goal("down shadow"),
        goal(
          "10x slower shadow vs healthy shadow: p99 (the shadow's health alone)",
          "≤ 1.25x",
          ratioToHealthy("10x slower shadow"),
          (v) => v <= 1.25,
          (v) => `${fmt(v, 2)}x`,
        ),
        goal(
          "down shadow vs healthy shadow: p99 (the shadow's health alone)",
          "≤ 1.25x",
          ratioToHealthy("down shadow"),
          (v) => v <= 1.25,
          (v) => `${fmt(v, 2)}x`,
        ),
        successGoal("10x slower shadow"),
        successGoal("stalled shadow"),
        successGoal("down shadow"),
        goal(
          "mirrors in flight never past the bound (any shadow)",
          `≤ ${MAX_IN_FLIGHT}`,
          maxMirrors,
          (v) => v <= MAX_IN_FLIGHT,
          (v) => String(v),
        ),
      ],
      markdown,
      failures,
    };
  },
};
