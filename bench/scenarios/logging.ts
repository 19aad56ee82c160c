// Suite "logging": CPU per call of connect-mesh's call logging at info (one
// JSON line per finished call on the server and one on the client, through
// pino to a file with connect-mesh's createLogDestination or with
// `pino.destination({ dest, sync: false })`, or to /dev/null) as a ratio to
// `logger: false` on both sides, measured in one run with interleaved
// repetitions; plus the log bytes and lines per call.

import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LabContext, type LabResult, type LabSuite, mdTable } from "../lib/lab/lab.js";
import {
  aggregate,
  Children,
  f,
  type PairedConfig,
  type PairedRow,
  pairedTiming,
  rnd,
  runInterleaved,
  cpuTable as sharedCpuTable,
  startConfigs,
} from "../lib/paired/paired.js";
import type { LogSink, LogSummary } from "../lib/paired/protocol.js";

const IN_FLIGHT = 32;
const PAYLOAD_BYTES = 128;

const TIMING = pairedTiming(IN_FLIGHT);

function configs(dir: string, run: string): PairedConfig[] {
  const variant = (label: string, server: LogSink, client: LogSink): PairedConfig => ({
    label,
    // The mesh defaults otherwise: idempotency on (memory store) and auto keys, as in the transport suite.
    server: { service: "echo", idempotency: "memory", log: server },
    client: { service: "echo", idempotencyKeys: true, log: client, payloadBytes: PAYLOAD_BYTES },
  });
  return [
    variant("logging off", { kind: "off" }, { kind: "off" }),
    variant(
      "info → file",
      { kind: "file", path: join(dir, `connect-mesh-bench-logging-${run}-server.log`) },
      { kind: "file", path: join(dir, `connect-mesh-bench-logging-${run}-client.log`) },
    ),
    variant(
      "info → file (pino.destination, async)",
      {
        kind: "file",
        path: join(dir, `connect-mesh-bench-logging-${run}-sb-server.log`),
        writer: "sonic-boom",
      },
      {
        kind: "file",
        path: join(dir, `connect-mesh-bench-logging-${run}-sb-client.log`),
        writer: "sonic-boom",
      },
    ),
    variant(
      "info → /dev/null",
      { kind: "file", path: "/dev/null" },
      { kind: "file", path: "/dev/null" },
    ),
  ];
}

interface LogFileRow {
  readonly side: "server" | "client";
  readonly config: string;
  readonly bytes: number;
  readonly lines: number;
  readonly calls: number;
  readonly bytes_per_call: number | null;
  readonly lines_per_call: number | null;
  readonly sample: string;
}

function cpuTable(rows: readonly PairedRow[]): string {
  return sharedCpuTable(rows, {
    headers: ["log bytes/call client / server"],
    cells: (r) => [
      r.client_log_bytes_per_call === 0 && r.server_log_bytes_per_call === 0
        ? "–"
        : `${f(r.client_log_bytes_per_call)} / ${f(r.server_log_bytes_per_call)}`,
    ],
  });
}

export const logging: LabSuite = {
  lab: true,
  name: "logging",
  title: "Call logging at info: CPU cost per call and log volume",
  notes: [
    `- Unary \`test.v1.EchoService/Echo\`, ${PAYLOAD_BYTES} B payload, trivial handler, ${IN_FLIGHT} calls in flight (closed loop), one mesh transport → one mesh server, client and server in separate processes, compression off; otherwise the mesh defaults (idempotency keys + memory store, retries, breakers), as in the transport suite.`,
    "- Baseline `logger: false` on both sides. Logging: both sides get `pino({ level: \"info\" }, createLogDestination({ dest }))`, i.e. the server's one line per finished call and the client's one line per finished call, written once per event-loop turn to a file in the temp directory, or to /dev/null (formatting and write(2) without the disk); `(pino.destination, async)` uses `pino.destination({ dest, sync: false })` (SonicBoom) instead, which copies its whole pending string on every line. Files are deleted after the run.",
    "- Each configuration has its own server and client process (quick runs: all configurations share one server and one client process); the processes stay up and configurations are loaded one at a time, rotating the order every repetition. A configuration's first window follows a warm-up (2000 calls, at most 5 s; quick: 300 calls, at most 0.6 s), later ones a 0.3 s pre-roll (quick: 0.1 s).",
    "- CPU µs/call is process CPU (user + system) over the window divided by successful calls; the ratio is computed per repetition against the baseline window of the same repetition, and the median (min–max) is shown, with the ratio of the medians next to it. On a machine whose other load (last column) is well above 0, CPU per call swings with contention: trust the ratios more than the absolute figures, and neither much when the two ratio figures disagree. Log bytes/call: bytes the loggers wrote over the window (counted in pino's `streamWrite` hook, so the asynchronous write backlog does not skew it) per call; the log volume table reads the whole files after a flush.",
  ],
  configs: () => [],
  budgetMs: (quick) => (quick ? 60_000 : 300_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const quick = ctx.quick;
    const timing = quick ? TIMING.quick : TIMING.full;
    const run = randomUUID().slice(0, 8);
    const cfgs = configs(tmpdir(), run);
    const files = cfgs.flatMap((c) =>
      [c.server.log, c.client.log].flatMap((l) =>
        l.kind === "file" && l.path !== "/dev/null" ? [l.path] : [],
      ),
    );
    const children = new Children();
    const failures: string[] = [];
    let rows: PairedRow[] = [];
    const logRows: LogFileRow[] = [];
    try {
      const t0 = performance.now();
      const bound = await startConfigs(children, cfgs, { share: quick });
      ctx.log(
        `suite logging: ${cfgs.length} configurations, ${timing.reps} interleaved reps of ${timing.windowMs} ms (start-up ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
      );
      const result = await runInterleaved("logging", bound, timing, { log: ctx.log });
      rows = aggregate(bound, result, 0, IN_FLIGHT);
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
      // Lines and bytes per call over the processes' whole life (after a flush).
      const labels = new Map(bound.map((b) => [b.name, b.config.label]));
      const seen = new Set<unknown>();
      for (const b of bound) {
        for (const [side, child] of [
          ["server", b.server],
          ["client", b.client],
        ] as const) {
          if (seen.has(child)) {
            continue;
          }
          seen.add(child);
          const summary = await child.call<LogSummary>("log-summary", undefined, 30_000);
          for (const file of summary.files) {
            if (file.path === "/dev/null") {
              continue;
            }
            logRows.push({
              side,
              config: labels.get(file.name) ?? file.name,
              bytes: file.bytes,
              lines: file.lines,
              calls: file.calls,
              bytes_per_call: rnd(file.bytes / file.calls, 1),
              lines_per_call: rnd(file.lines / file.calls, 3),
              sample: file.sample,
            });
          }
        }
      }
    } finally {
      await children.close();
      for (const p of files) {
        rmSync(p, { force: true });
      }
    }

    const md: string[] = [];
    md.push("**CPU per call, ratio to logging off** (same run, interleaved repetitions)");
    md.push("");
    md.push(cpuTable(rows));
    md.push("");
    if (logRows.length > 0) {
      md.push("**Log volume** (whole run, after flushing)");
      md.push("");
      md.push(
        mdTable(
          ["side", "calls", "lines", "lines/call", "bytes", "bytes/call"],
          logRows.map((l) => [
            l.side,
            String(l.calls),
            String(l.lines),
            f(l.lines_per_call, 3),
            String(l.bytes),
            f(l.bytes_per_call, 1),
          ]),
        ),
      );
      md.push("");
      for (const l of logRows) {
        md.push(`Sample ${l.side} line (${l.sample.length} B):`);
        md.push("");
        md.push("```json");
        md.push(l.sample);
        md.push("```");
        md.push("");
      }
    }
    return {
      method: {
        ...timing,
        payload_bytes: PAYLOAD_BYTES,
        processes: quick
          ? "shared (one server and one client process)"
          : "one server and one client process per configuration",
        configs: cfgs.map((c) => ({ label: c.label, server: c.server, client: c.client })),
      },
      results: { cpu: rows, log_files: logRows },
      goals: [],
      failures,
      markdown: md.join("\n"),
    };
  },
};
