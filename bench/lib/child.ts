// Child-process side of the IPC protocol: answer the parent's commands, and
// exit when the parent goes away or a command asks to.

import { readFileSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { getHeapSpaceStatistics, setFlagsFromString, writeHeapSnapshot } from "node:v8";
import type { ProcessWindow, Reply, Request } from "./protocol.js";

export type Handlers = Record<string, (args: unknown) => unknown>;

// tsx turns source maps on, which makes every Error stack access costlier than
// in a compiled deployment; benchmark children turn them off again
// (BENCH_SOURCE_MAPS=1 keeps them).
if (process.env.BENCH_SOURCE_MAPS !== "1") {
  process.setSourceMapsEnabled(false);
}

/** CHILD names this child in debug output: its entry file (server.mjs, client.mjs...). */
const CHILD = process.argv[1]?.split("/").pop() ?? "child";

// BENCH_V8_FLAGS passes V8 flags to every child (e.g. `--trace-gc-nvp`),
// which NODE_OPTIONS does not allow.
if (process.env.BENCH_V8_FLAGS) setFlagsFromString(process.env.BENCH_V8_FLAGS);

// Children run with --no-warnings; warnings are collected and reported to the
// runner instead, which shows each distinct one once per configuration.
const warnings = new Set<string>();
process.on("warning", (w) => {
  if (warnings.size < 20) {
    warnings.add(`${w.name}: ${w.message}`);
  }
});

/**
 * serveCommands answers Requests from the parent with the named handler. The
 * process exits when the IPC channel closes (parent exited or killed us), so
 * a child never outlives its runner.
 */
export function serveCommands(handlers: Handlers): void {
  if (process.send === undefined) {
    console.error("bench child: must be started with an IPC channel (child_process.fork)");
    process.exit(2);
  }
  process.on("disconnect", () => process.exit(0));
  process.on("message", (raw) => {
    const req = raw as Request;
    const handler = handlers[req.cmd];
    const reply = (r: Reply) => {
      if (process.connected) {
        process.send?.(r);
      }
    };
    if (handler === undefined) {
      reply({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(req.args))
      .then(
        (result) => reply({ id: req.id, ok: true, result: result ?? null }),
        (err: unknown) => reply({ id: req.id, ok: false, error: errorMessage(err) }),
      );
  });
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    return `${err.name}: ${err.message}`;
  }
  return String(err);
}

/** WindowMeter measures CPU and wall time between begin() and end(). */
export class WindowMeter {
  private cpu: NodeJS.CpuUsage | undefined;
  private t0 = 0;

  begin(): void {
    startHeapSampling();
    this.t0 = performance.now();
    this.cpu = process.cpuUsage();
  }

  end(): ProcessWindow {
    const cpu = process.cpuUsage(this.cpu);
    const elapsedMs = performance.now() - this.t0;
    if (this.cpu === undefined) {
      throw new Error("mark-end before mark-begin");
    }
    this.cpu = undefined;
    // resourceUsage().maxRSS is in kilobytes.
    const maxRssBytes = process.resourceUsage().maxRSS * 1024;
    if (process.env.BENCH_MEM_DEBUG === "1") writeMemoryBreakdown(maxRssBytes);
    // BENCH_HEAP_SNAPSHOT_DIR=DIR writes a heap snapshot (live objects, after a
    // full GC) per child at the end of each window, for what the old space holds.
    stopHeapSampling();
    const snapshotDir = process.env.BENCH_HEAP_SNAPSHOT_DIR;
    if (snapshotDir !== undefined && snapshotDir !== "") {
      writeHeapSnapshot(`${snapshotDir}/${CHILD}-${process.pid}.heapsnapshot`);
    }
    return {
      elapsedMs,
      cpuUs: cpu.user + cpu.system,
      cpuUserUs: cpu.user,
      cpuSystemUs: cpu.system,
      maxRssBytes,
      warnings: [...warnings],
    };
  }
}

// BENCH_HEAP_SAMPLING_DIR=DIR samples allocations over each window and keeps
// those that outlived a scavenge (collected later by a full GC, or still live):
// where promoted, old-generation bytes come from; with BENCH_HEAP_SAMPLING_ALL=1,
// every allocation. One .heapprofile per child
// and window, for Chrome DevTools or bench/lib/profile tooling.
let heapSession: Session | undefined;
function startHeapSampling(): void {
  const dir = process.env.BENCH_HEAP_SAMPLING_DIR;
  if (dir === undefined || dir === "") return;
  heapSession = new Session();
  heapSession.connect();
  heapSession.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    // BENCH_HEAP_SAMPLING_ALL=1 keeps every sampled allocation (bytes allocated per call).
    includeObjectsCollectedByMinorGC: process.env.BENCH_HEAP_SAMPLING_ALL === "1",
  });
}
function stopHeapSampling(): void {
  const session = heapSession;
  if (session === undefined) return;
  heapSession = undefined;
  session.post("HeapProfiler.stopSampling", (err, result) => {
    if (err === null && result !== undefined) {
      writeFileSync(
        `${process.env.BENCH_HEAP_SAMPLING_DIR}/${CHILD}-${process.pid}-${Date.now()}.heapprofile`,
        JSON.stringify(result.profile),
      );
    }
    session.disconnect();
  });
}

/**
 * writeMemoryBreakdown prints, at the end of a measured window, where this
 * child's memory sits (MB): RSS, V8 heap committed/used, external and
 * ArrayBuffer bytes, and each heap space as committed/used. Peak RSS alone
 * does not tell a young generation grown by the allocation rate from old
 * objects or off-heap buffers (a store's slab). BENCH_MEM_DEBUG=1 turns it on.
 */
function writeMemoryBreakdown(maxRssBytes: number): void {
  const mb = (n: number) => Math.round(n / 1048576);
  const m = process.memoryUsage();
  const spaces = getHeapSpaceStatistics()
    .filter((s) => s.space_size > 0)
    .map((s) => `${s.space_name}=${mb(s.space_size)}/${mb(s.space_used_size)}`);
  process.stderr.write(
    `MEM ${CHILD} pid=${process.pid} ${smapsSummary()} rss=${mb(m.rss)} maxRss=${mb(maxRssBytes)} heap=${mb(m.heapTotal)}/${mb(m.heapUsed)} external=${mb(m.external)} arrayBuffers=${mb(m.arrayBuffers)} ${spaces.join(" ")}\n`,
  );
}

// smapsSummary splits this process's resident memory by mapping kind (MB):
// the malloc heap ([heap], brk), anonymous mappings (V8's heap pages, glibc's
// thread arenas and large mmap'd allocations) and file-backed mappings (code).
function smapsSummary(): string {
  let text: string;
  try {
    text = readFileSync("/proc/self/smaps", "utf8");
  } catch {
    return "";
  }
  const kb = { brk: 0, anon: 0, file: 0 };
  let kind: keyof typeof kb = "anon";
  for (const line of text.split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const name = header[1] ?? "";
      kind = name === "[heap]" ? "brk" : name === "" || name.startsWith("[") ? "anon" : "file";
      continue;
    }
    if (line.startsWith("Rss:")) kb[kind] += Number.parseInt(line.slice(4), 10);
  }
  const mb = (n: number) => Math.round(n / 1024);
  return `brk=${mb(kb.brk)} anon=${mb(kb.anon)} file=${mb(kb.file)}`;
}
