import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const DEMO = ["--import", "tsx", "examples/demo.ts"];

const dir = mkdtempSync(join(tmpdir(), "mesh-demo-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** pidsOf finds the replica pids the demo printed. */
function pidsOf(stdout: string): number[] {
  return [...stdout.matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** runDirOf finds the demo's temp dir (registry, idempotency records) in its output. */
function runDirOf(stdout: string): string | undefined {
  return /(\/\S*connect-mesh-demo-[^/\s]+)\//.exec(stdout)?.[1];
}

// Child processes (tsx start-up, 3 replicas): generous for an oversubscribed host.
describe("examples: the npm start demo", { timeout: 180_000 }, () => {
  it("runs 3 replica processes through faults, meets its expectations and exits 0", async () => {
    const logFile = join(dir, "short-run.jsonl");
    const { stdout } = await run(
      process.execPath,
      [...DEMO, "--duration", "4", "--log-file", logFile],
      // Generous: about 20 s on a quiet host, much longer on an oversubscribed one.
      { timeout: 150_000 },
    ).catch((e: { code?: number; stdout?: string; stderr?: string }) => {
      // Show why the demo failed its expectations, not only that it did.
      throw new Error(`demo exited ${e.code}\n${e.stdout ?? ""}\n${e.stderr ?? ""}`);
    });
    // Not a terminal: plain status lines, no escape sequences.
    expect(stdout).not.toContain("\x1b[");
    expect(stdout).toMatch(/replica-1 +pid \d+ +127\.0\.0\.1:\d+ +slow/);
    expect(stdout).toMatch(/replica-2 +pid \d+ .*flaky/);
    expect(stdout).toMatch(/replica-3 +pid \d+ .*SIGKILLed mid-run/);
    expect(stdout).toMatch(/^ *\d+\.\d s +\d+ calls\/s +ok [\d.]+%/m);
    expect(stdout).toMatch(/\* replica-3 SIGKILLed \(pid \d+\)/);
    expect(stdout).toMatch(/^ {2}dashboard +http:\/\/127\.0\.0\.1:\d+\/ /m);
    for (const line of [
      /^Summary: /m,
      /^ {2}calls +[\d,]+ \(CreateOrder [\d,]+, GetOrder [\d,]+\)/m,
      /^ {2}succeeded +[\d,]+ \(\d+\.\d+%\)/m,
      /^ {2}failed +\d+/m,
      /^ {2}latency +p50 [\d.]+ ms, p99 [\d.]+ ms/m,
      /^ {2}retries +[\d,]+/m,
      /^ {2}duplicates +[\d,]+ prevented/m,
      /CreateOrder handler ran [\d,]+ times for [\d,]+ distinct keys: none twice/,
      /^ {2}traffic +requests received: replica-1 [\d.]+%/m,
      /^ {2}JSON logs +\S+short-run\.jsonl \([\d,]+ lines/m,
      /✓ success [\d.]+% ≥ 99\.9%/,
      /✓ no CreateOrder ran twice/,
      // The overload phase: the adaptive limit under a 3x burst (figures vary; the lines must be there).
      /^ {2}overload +burst at 3x: [\d,]+ calls\/s offered for 4 s to a server doing 40\/s/m,
      /^ {16}limit \d+ → \d+ \(lowest \d+, [\d,]+ changes?\); goodput [\d,]+ calls\/s \([\d.]+x capacity\)/m,
      /refused at once with RESOURCE_EXHAUSTED \(grpc-retry-pushback-ms (50|-)\)/,
    ]) {
      expect(stdout).toMatch(line);
    }
    expect(stdout.trimEnd().endsWith("demo: OK")).toBe(true);

    // One retried call, followed through the log file across processes.
    const traceId = /followed across the hops, trace_id ([0-9a-f]{32})/.exec(stdout)?.[1];
    expect(traceId, stdout).toBeDefined();
    const lines = readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => l.includes(traceId as string))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const procs = new Set(lines.map((l) => l.proc));
    expect(procs.has("client")).toBe(true);
    expect(procs.size).toBeGreaterThanOrEqual(2);
    expect(lines.filter((l) => l.msg === "finished attempt").length).toBeGreaterThanOrEqual(2);

    // Nothing left behind.
    for (const pid of pidsOf(stdout)) expect(alive(pid), `pid ${pid}`).toBe(false);
    const runDir = runDirOf(stdout);
    expect(runDir).toBeDefined();
    expect(existsSync(runDir as string)).toBe(false);
  });

  it("stops on SIGINT: summary, exit 130, every replica process gone, temp dir removed", async () => {
    const child = spawn(
      process.execPath,
      [...DEMO, "--duration", "60", "--log-file", join(dir, "sigint.jsonl")],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let stdout = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      stdout += d;
    });
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const deadline = Date.now() + 120_000;
    while (!/\d+\.\d s +\d+ calls\/s/.test(stdout) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    // The live dashboard watches the run's transport.
    const dashboard = /^ {2}dashboard +(http:\/\/127\.0\.0\.1:\d+\/) /m.exec(stdout)?.[1];
    expect(dashboard, stdout).toBeDefined();
    const state = (await (await fetch(new URL("api/state", dashboard))).json()) as {
      transports: { target: string }[];
      stats: { methods: { method: string }[] };
    };
    expect(state.transports[0]?.target).toMatch(/^mesh:\/\/\//);
    expect(state.stats.methods.map((m) => m.method)).toContain(
      "example.orders.v1.OrderService/GetOrder",
    );
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(stdout).toContain("SIGINT: stopping the load");
    expect(stdout).toMatch(/^Summary: .*\(interrupted\)/m);
    const pids = pidsOf(stdout);
    expect(pids.length).toBeGreaterThanOrEqual(3);
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
    expect(existsSync(runDirOf(stdout) as string)).toBe(false);
  });

  it("explains its options with --help and rejects bad ones with exit 2", async () => {
    const { stdout } = await run(process.execPath, [...DEMO, "--help"], { timeout: 60_000 });
    for (const option of [
      "--duration",
      "--replicas",
      "--etcd",
      "--redis",
      "--pretty",
      "--admin-port",
      "--no-admin",
    ]) {
      expect(stdout).toContain(option);
    }
    const bad = await run(process.execPath, [...DEMO, "--duration", "soon"], {
      timeout: 60_000,
    }).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toContain('--duration "soon" must be a number');
  });
});
