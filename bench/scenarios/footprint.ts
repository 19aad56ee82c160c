// Suite "footprint": what importing each stack costs a process before any
// call, the floor under every peak RSS in the transport and streaming suites.
// Each repetition forks a fresh plain `node` (no TypeScript loader) that
// imports a stack's libraries as the bench children load them, lets the
// event loop settle, and reports its RSS and V8 heap; configurations are
// interleaved round-robin over repetitions. The `+ Headers` rows also build
// one WHATWG `Headers`, which Connect's API uses on every call (header,
// trailer, error metadata) and which makes Node load its bundled undici.

import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { fmt, type LabContext, type LabResult, type LabSuite, mdTable, r } from "../lib/lab/lab.js";
import { ensureMeshBuild } from "../lib/mesh-library.js";
import { median } from "../lib/stats.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MESH_DIST = fileURLToPath(new URL("../../dist/src/index.js", import.meta.url));

interface Config {
  readonly name: string;
  /** modules are imported in order. */
  readonly modules: readonly string[];
  /** headers: also build one `Headers` (what a Connect call does). */
  readonly headers: boolean;
}

const CONFIGS: readonly Config[] = [
  { name: "node (node:http2)", modules: ["node:http2"], headers: false },
  {
    name: "grpc-js (+ protobuf-es, as the bench's grpc-js stack)",
    modules: ["node:http2", "@grpc/grpc-js", "@bufbuild/protobuf"],
    headers: false,
  },
  {
    name: "Connect (connect-node, protobuf-es)",
    modules: [
      "node:http2",
      "@connectrpc/connect",
      "@connectrpc/connect-node",
      "@bufbuild/protobuf",
    ],
    headers: false,
  },
  {
    name: "Connect + Headers",
    modules: [
      "node:http2",
      "@connectrpc/connect",
      "@connectrpc/connect-node",
      "@bufbuild/protobuf",
    ],
    headers: true,
  },
  {
    name: "Connect + Headers + pino",
    modules: [
      "node:http2",
      "@connectrpc/connect",
      "@connectrpc/connect-node",
      "@bufbuild/protobuf",
      "pino",
    ],
    headers: true,
  },
  {
    name: "connect-mesh (dist, one bundled module)",
    modules: ["node:http2", MESH_DIST],
    headers: true,
  },
];

interface Sample {
  readonly rssMb: number;
  readonly heapUsedMb: number;
}

// The child: import, build Headers when asked, let lazy work settle, report.
const CHILD = `
const [modules, headers] = JSON.parse(process.argv[1]);
for (const m of modules) await import(m);
if (headers) new Headers({ "content-type": "application/grpc" });
await new Promise((r) => setTimeout(r, 300));
const m = process.memoryUsage();
process.stdout.write(JSON.stringify({ rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20 }));
`;

async function measure(c: Config): Promise<Sample> {
  const { stdout } = await run(
    process.execPath,
    ["--input-type=module", "-e", CHILD, JSON.stringify([c.modules, c.headers])],
    { cwd: ROOT, timeout: 30_000 },
  );
  return JSON.parse(stdout) as Sample;
}

export const footprint: LabSuite = {
  lab: true,
  name: "footprint",
  title: "Import footprint: RSS and V8 heap of a process that loaded a stack, before any call",
  notes: [
    "- Each repetition forks a fresh plain `node` process (cwd: the repo, so packages resolve from its node_modules) that imports the stack's modules, waits 300 ms and reports `process.memoryUsage()` rss and heapUsed; configurations are interleaved round-robin; figures are medians with min–max over repetitions.",
    "- `+ Headers` builds one WHATWG `Headers`: Connect's API (call headers and trailers, `ConnectError` metadata) needs them on every call, and the first one makes Node load its bundled undici. The grpc-js stack never does. connect-mesh's own import already makes one (its `ResponseHeaders` extends `Headers`).",
    "- This is the floor under the transport and streaming suites' peak RSS: a process's peak is its import footprint plus what its calls allocate (young generation, old objects, buffers).",
  ],
  configs: () => [],
  budgetMs: (quick) => (quick ? 60_000 : 180_000),
  async run(ctx: LabContext): Promise<LabResult> {
    const { quick, log } = ctx;
    ensureMeshBuild(log);
    const reps = quick ? 2 : 7;
    const samples = new Map<string, Sample[]>(CONFIGS.map((c) => [c.name, []]));
    const failures: string[] = [];
    for (let rep = 0; rep < reps; rep++) {
      // Rotate the order per repetition, so drift hits every row alike.
      for (let i = 0; i < CONFIGS.length; i++) {
        const c = CONFIGS[(i + rep) % CONFIGS.length] as Config;
        try {
          samples.get(c.name)?.push(await measure(c));
        } catch (e) {
          failures.push(`${c.name}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      log(`[footprint] repetition ${rep + 1}/${reps} done`);
    }
    const ref = CONFIGS[1]?.name as string;
    const medianOf = (name: string, f: (s: Sample) => number) =>
      median((samples.get(name) ?? []).map(f));
    const refRss = medianOf(ref, (s) => s.rssMb);
    const rows = CONFIGS.map((c) => {
      const s = samples.get(c.name) ?? [];
      const rss = s.map((x) => x.rssMb);
      return {
        config: c.name,
        modules: c.modules.map((m) => (m === MESH_DIST ? "connect-mesh" : m)),
        headers: c.headers,
        reps: s.length,
        rss_mb: r(median(rss), 1),
        rss_mb_min: r(Math.min(...rss), 1),
        rss_mb_max: r(Math.max(...rss), 1),
        heap_used_mb: r(median(s.map((x) => x.heapUsedMb)), 1),
        rss_ratio_to_grpc_js: r(median(rss) / refRss, 2),
      };
    });
    const markdown = mdTable(
      ["stack", "RSS MB (median)", "RSS MB min–max", "V8 heap used MB", "RSS vs grpc-js"],
      rows.map((x) => [
        x.config,
        fmt(x.rss_mb, 1),
        `${fmt(x.rss_mb_min, 1)}–${fmt(x.rss_mb_max, 1)}`,
        fmt(x.heap_used_mb, 1),
        `${fmt(x.rss_ratio_to_grpc_js, 2)}x`,
      ]),
    );
    return {
      method: {
        reps,
        settle_ms: 300,
        node: process.version,
        processes: "fresh plain node per sample",
      },
      results: { rows },
      goals: [],
      markdown,
      failures,
    };
  },
};
