// CPU-profile CLI: `npm run bench:profile -- --pair "mesh→mesh" [--payload 128]`.
// Runs one client and one server child of a transport (or streaming) suite
// configuration under `node --cpu-prof`, drives the usual load, and splits
// each process's self time inside the measured window by layer (Connect-ES,
// protobuf-es, the mesh's src/ folders, pino, grpc-js, Node internals, GC,
// idle) as µs per call. Writes results/profile-<pair>[-<payload>].json and .md.
// See bench/README.md.

import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { childFiles } from "./lib/child-build.js";
import { ensureMeshBuild } from "./lib/mesh-library.js";
import { killAllChildrenSync, sleep, spawnChild } from "./lib/process.js";
import { type CpuProfile, type ProfileSummary, summarizeProfile } from "./lib/profile/summarize.js";
import type {
  BenchConfig,
  ClientInit,
  ClientWindow,
  ProcessWindow,
  ServerInit,
  ServerReady,
} from "./lib/protocol.js";
import { streaming } from "./scenarios/streaming.js";
import { transport } from "./scenarios/transport.js";

const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));

const INIT_TIMEOUT_MS = 30_000;
/** Writing a profile of a few seconds can take a while on a busy machine. */
const EXIT_TIMEOUT_MS = 60_000;

const USAGE = `usage: npm run bench:profile -- --pair "mesh→mesh" [options]
  --pair LABEL        a transport or streaming configuration, e.g. "mesh→mesh",
                      "grpc-js→grpc-js", "lean→lean", "mesh→mesh (no side effects)",
                      "mesh→mesh bidi ping-pong" (spaces and "->" are fine)
  --payload BYTES     payload size of the configuration (default 128)
  --warmup-ms MS      load before the profiled window (default 2000)
  --duration-ms MS    profiled window (default 5000)
  --interval-us US    sampling interval (default 250)
  --no-write          print only
  --keep DIR          copy the raw .cpuprofile files to DIR/client and DIR/server
                      (open them in Chrome DevTools or speedscope)
  --help`;

const normalize = (label: string) =>
  label.replaceAll("->", "→").replaceAll(/\s+/g, "").toLowerCase();

function slug(label: string, payloadBytes: number): string {
  const base = label
    .toLowerCase()
    .replaceAll("→", "-")
    .replaceAll(/[^a-z0-9-]+/g, "-")
    .replaceAll(/-+/g, "-")
    .replace(/^-|-$/g, "");
  return payloadBytes === 128 ? base : `${base}-${payloadBytes}`;
}

function findConfig(pair: string, payloadBytes: number): BenchConfig | undefined {
  const all = [...transport.configs({ quick: false }), ...streaming.configs({ quick: false })];
  return all.find((c) => normalize(c.label) === normalize(pair) && c.payloadBytes === payloadBytes);
}

function nonNegative(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) {
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`--${name} must be a positive integer, got ${v}`);
  }
  return n;
}

const hrUs = () => Number(process.hrtime.bigint() / 1000n);

interface ProcessProfile extends Omit<ProfileSummary, "layers"> {
  /** layers add cpu_us_per_call: the layer's share of busy samples times the process's CPU per call. */
  readonly layers: ReadonlyArray<
    ProfileSummary["layers"][number] & { cpu_us_per_call: number | null }
  >;
  /** cpu_us_per_call is process.cpuUsage over the window, per call (the benchmark's figure). */
  readonly cpu_us_per_call: number;
  readonly peak_rss_mb: number;
}

/** ProfileReport is results/profile-<pair>.json. */
interface ProfileReport {
  readonly pair: string;
  readonly payload_bytes: number;
  readonly in_flight: number;
  readonly workload: string;
  readonly date: string;
  readonly node: string;
  readonly machine: { readonly cpus: number; readonly model: string };
  readonly interval_us: number;
  readonly warmup_ms: number;
  readonly duration_ms: number;
  readonly calls: number;
  readonly rps: number;
  readonly errors: number;
  readonly other_note: string;
  readonly client: ProcessProfile;
  readonly server: ProcessProfile;
}

async function profileOnce(
  config: BenchConfig,
  dir: string,
  warmupMs: number,
  durationMs: number,
  intervalUs: number,
): Promise<{
  client: ClientWindow;
  server: ProcessWindow;
  fromUs: number;
  toUs: number;
}> {
  // One directory per child: tsx's loader thread writes a profile of its own
  // (so no --cpu-prof-name, which both threads would share).
  const prof = (name: string) => [
    "--cpu-prof",
    `--cpu-prof-dir=${join(dir, name)}`,
    `--cpu-prof-interval=${intervalUs}`,
  ];
  // The children run as the suites run them (lib/child-build.ts).
  const files = await childFiles();
  const server = spawnChild("server", files.server, prof("server"));
  const client = spawnChild("client", files.client, prof("client"));
  try {
    const loaded = client.call("load", { stack: config.client.stack }, INIT_TIMEOUT_MS);
    const spec = config.servers[0];
    if (spec === undefined) {
      throw new Error(`${config.label}: no server`);
    }
    const ready = await server.call<ServerReady>(
      "init",
      { spec } satisfies ServerInit,
      INIT_TIMEOUT_MS,
    );
    await loaded;
    const init: ClientInit = {
      spec: config.client,
      targets: [`127.0.0.1:${ready.port}`],
      payloadBytes: config.payloadBytes,
      inFlight: config.inFlight,
      ...(config.workload === undefined ? {} : { workload: config.workload }),
      ...(config.streamMessages === undefined ? {} : { streamMessages: config.streamMessages }),
    };
    await client.call("init", init, INIT_TIMEOUT_MS);
    await client.call("start");
    await sleep(warmupMs);
    // The window on the children's clock: the midpoint of each mark's round trip.
    const b0 = hrUs();
    await Promise.all([client.call("mark-begin"), server.call("mark-begin")]);
    const fromUs = (b0 + hrUs()) / 2;
    await sleep(durationMs);
    const e0 = hrUs();
    const [cw, sw] = (await Promise.all([client.call("mark-end"), server.call("mark-end")])) as [
      ClientWindow,
      ProcessWindow,
    ];
    const toUs = (e0 + hrUs()) / 2;
    // Both children exit by themselves after these; --cpu-prof writes on exit.
    await client.call("stop", undefined, 20_000);
    await Promise.race([client.exited, sleep(EXIT_TIMEOUT_MS)]);
    await server.call("close", undefined, 20_000);
    await Promise.race([server.exited, sleep(EXIT_TIMEOUT_MS)]);
    return { client: cw, server: sw, fromUs, toUs };
  } finally {
    await Promise.all([client.kill(), server.kill()]);
  }
}

/**
 * readProfile reads the main thread's profile. Files are named
 * CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; the main thread is 0
 * (tsx's loader thread writes one too).
 */
function readProfile(dir: string, name: string): CpuProfile {
  const own = join(dir, name);
  const files = readdirSync(own).filter((f) => f.endsWith(".cpuprofile"));
  const main = files.find((f) => f.split(".")[4] === "0");
  if (main === undefined) {
    throw new Error(
      `${name}: no main-thread CPU profile in ${own} (found ${files.join(", ") || "none"}; did the child exit cleanly?)`,
    );
  }
  return JSON.parse(readFileSync(join(own, main), "utf8")) as CpuProfile;
}

function markdown(r: ProfileReport): string {
  const lines: string[] = [];
  lines.push(`### CPU profile: ${r.pair}, ${r.payload_bytes} B, ${r.in_flight} in flight`);
  lines.push("");
  lines.push(
    `Node ${r.node}, ${r.machine.cpus} × ${r.machine.model}; ${r.date.slice(0, 16)}Z; ${r.duration_ms / 1000} s window after ${r.warmup_ms / 1000} s warm-up, sampled every ${r.interval_us} µs; ${r.calls} calls (${Math.round(r.rps)}/s, ${r.errors} errors).`,
  );
  lines.push(
    `Process CPU µs/call (cpuUsage): client ${r.client.cpu_us_per_call}, server ${r.server.cpu_us_per_call}; sampled busy µs/call: client ${r.client.busy_us_per_call}, server ${r.server.busy_us_per_call}. Peak RSS MB: client ${r.client.peak_rss_mb}, server ${r.server.peak_rss_mb}.`,
  );
  lines.push("");
  lines.push(
    "| layer | client CPU µs/call | client % | server CPU µs/call | server % | client + server CPU µs/call |",
  );
  lines.push("|---|--:|--:|--:|--:|--:|");
  const get = (p: ProcessProfile, name: string) => p.layers.find((l) => l.layer === name);
  const total = (name: string) =>
    (get(r.client, name)?.cpu_us_per_call ?? 0) + (get(r.server, name)?.cpu_us_per_call ?? 0);
  const names = [...new Set([...r.client.layers, ...r.server.layers].map((l) => l.layer))].filter(
    (n) => n !== "idle",
  );
  names.sort((a, b) => total(b) - total(a));
  const cell = (l: ProcessProfile["layers"][number] | undefined) =>
    l === undefined || l.cpu_us_per_call === null || l.pct === null
      ? "– | –"
      : `${l.cpu_us_per_call.toFixed(1)} | ${l.pct.toFixed(1)}`;
  for (const name of names) {
    lines.push(
      `| ${name} | ${cell(get(r.client, name))} | ${cell(get(r.server, name))} | ${total(name).toFixed(1)} |`,
    );
  }
  lines.push(
    `| **total (process CPU)** | ${r.client.cpu_us_per_call.toFixed(1)} | 100 | ${r.server.cpu_us_per_call.toFixed(1)} | 100 | ${(r.client.cpu_us_per_call + r.server.cpu_us_per_call).toFixed(1)} |`,
  );
  lines.push("");
  lines.push(
    "Self time by layer: each sample inside the measured window is charged to its frame's layer; native frames (V8 builtins, C++ bindings) to their nearest JavaScript caller. % is the layer's share of the busy (non-idle) samples; CPU µs/call is that share of the process's measured CPU per call (process.cpuUsage over the window), since samples count wall time and a descheduled process keeps \"spending\" it in its current frame. The profiler's own overhead inflates every figure a little; read the split, not the totals. Hottest functions below are raw sampled µs/call.",
  );
  for (const [side, p] of [
    ["client", r.client],
    ["server", r.server],
  ] as const) {
    lines.push("");
    lines.push(`Hottest functions, ${side} (self µs/call):`);
    lines.push("");
    lines.push("| function | where | layer | µs/call | % |");
    lines.push("|---|---|---|--:|--:|");
    for (const f of p.top.slice(0, 15)) {
      lines.push(
        `| \`${f.function}\` | ${f.where} | ${f.layer} | ${f.us_per_call.toFixed(1)} | ${f.pct.toFixed(1)} |`,
      );
    }
  }
  lines.push("");
  return lines.join("\n");
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2).filter((a) => a !== "--");
  let values: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      args: argv,
      options: {
        pair: { type: "string" },
        payload: { type: "string" },
        "warmup-ms": { type: "string" },
        "duration-ms": { type: "string" },
        "interval-us": { type: "string" },
        "no-write": { type: "boolean", default: false },
        keep: { type: "string" },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  }
  let payloadBytes: number;
  let warmupMs: number;
  let durationMs: number;
  let intervalUs: number;
  try {
    values = parse();
    payloadBytes = nonNegative("payload", values.payload, 128);
    warmupMs = nonNegative("warmup-ms", values["warmup-ms"], 2000);
    durationMs = nonNegative("duration-ms", values["duration-ms"], 5000);
    intervalUs = nonNegative("interval-us", values["interval-us"], 250);
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.pair === undefined) {
    console.error(`--pair is required\n${USAGE}`);
    return 2;
  }
  ensureMeshBuild();
  const config = findConfig(values.pair, payloadBytes);
  if (config === undefined) {
    const labels = [
      ...new Set(
        [...transport.configs({ quick: false }), ...streaming.configs({ quick: false })].map(
          (c) => `${c.label} (${c.payloadBytes} B)`,
        ),
      ),
    ];
    console.error(
      `no configuration "${values.pair}" at ${payloadBytes} B; known:\n  ${labels.join("\n  ")}`,
    );
    return 2;
  }
  const dir = mkdtempSync(join(os.tmpdir(), "connect-mesh-profile-"));
  try {
    console.error(
      `profiling ${config.label}, ${config.payloadBytes} B x${config.inFlight}: ${warmupMs} ms warm-up, ${durationMs} ms window, every ${intervalUs} µs`,
    );
    const run = await profileOnce(config, dir, warmupMs, durationMs, intervalUs);
    const calls = run.client.calls;
    if (calls === 0) {
      console.error(
        `no successful calls in the window (${run.client.errors} errors: ${run.client.firstError ?? "?"})`,
      );
      return 1;
    }
    const summarize = (name: "client" | "server", w: ProcessWindow): ProcessProfile => {
      const cpuUsPerCall = w.cpuUs / calls;
      const p = summarizeProfile(readProfile(dir, name), run.fromUs, run.toUs, calls, REPO_ROOT);
      return {
        cpu_us_per_call: Math.round(cpuUsPerCall * 10) / 10,
        peak_rss_mb: Math.round((w.maxRssBytes / 2 ** 20) * 10) / 10,
        ...p,
        // Samples measure wall time: on a busy machine a descheduled process
        // still "spends" the gap in whatever frame it was in, so the split is
        // scaled to the process's measured CPU per call.
        layers: p.layers.map((l) => ({
          ...l,
          cpu_us_per_call: l.pct === null ? null : Math.round(l.pct * cpuUsPerCall) / 100,
        })),
      };
    };
    const cpus = os.cpus();
    const report: ProfileReport = {
      pair: config.label,
      payload_bytes: config.payloadBytes,
      in_flight: config.inFlight,
      workload: config.workload ?? "unary",
      date: new Date().toISOString(),
      node: process.version,
      machine: { cpus: cpus.length, model: cpus[0]?.model.trim() ?? "unknown" },
      interval_us: intervalUs,
      warmup_ms: warmupMs,
      duration_ms: durationMs,
      calls,
      rps: Math.round((calls * 1000) / run.client.elapsedMs),
      errors: run.client.errors,
      other_note:
        "one run, no quiet wait: other load on the machine lowers throughput and raises µs/call; the split by layer is the useful part",
      client: summarize("client", run.client),
      server: summarize("server", run.server),
    };
    const md = markdown(report);
    console.log(md);
    if (!values["no-write"]) {
      mkdirSync(RESULTS_DIR, { recursive: true });
      const base = join(RESULTS_DIR, `profile-${slug(config.label, config.payloadBytes)}`);
      writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
      writeFileSync(`${base}.md`, md);
      console.error(`wrote ${base}.json and ${base}.md`);
    }
    if (values.keep !== undefined) {
      cpSync(dir, values.keep, { recursive: true });
      console.error(`kept the raw profiles in ${values.keep}`);
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
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
