import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The layers of src/, bottom up: a feature folder may use the call's floor
// (src/call/ and the root helpers) and other features, never the two folders
// that compose everything.
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");
const COMPOSERS = ["client", "server"];
const FEATURES = [
  "retry",
  "breaker",
  "observability",
  "idempotency",
  "discovery",
  "balancer",
  "queue",
  "stats",
  "limit",
  "faults",
  "call",
  "chain",
  "grpc",
  "identity",
  "authz",
  "mirror",
];
// Known exceptions, each with the reason it stands and who removes it.
const ALLOWED = new Set<string>([]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sourceFiles(p);
    return d.name.endsWith(".ts") ? [p] : [];
  });
}

/** importsOf lists the src/ files `file` imports (static, dynamic and type-only). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  const pattern =
    /(?:^|[\s;])(?:import|export)\s[^"';]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;
  for (const m of text.matchAll(pattern)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec === undefined || !spec.startsWith(".")) continue;
    const target = resolve(dirname(file), spec.replace(/\.js$/, ".ts"));
    if (target.startsWith(SRC)) out.push(target);
  }
  return out;
}

function buildGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of sourceFiles(SRC)) {
    graph.set(
      relative(SRC, f),
      importsOf(f).map((t) => relative(SRC, t)),
    );
  }
  return graph;
}

/** findCycles returns one file path per cycle found by depth-first search. */
function findCycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles: string[][] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const s = state.get(next);
      if (s === "open") cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (s === undefined && graph.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return cycles;
}

function upwardImports(graph: Map<string, string[]>): string[] {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    const folder = from.split("/")[0] ?? "";
    if (!FEATURES.includes(folder)) continue;
    for (const to of targets) {
      const toFolder = to.split("/")[0] ?? "";
      const edge = `${from} -> ${to}`;
      if (COMPOSERS.includes(toFolder) && !ALLOWED.has(edge)) bad.push(edge);
    }
  }
  return bad;
}

describe("import graph of src/", () => {
  const graph = buildGraph();

  it("reads every source file and its imports", () => {
    expect(graph.size).toBeGreaterThan(100);
    expect(graph.get("client/create-mesh-transport.ts")).toContain("client/attempt-step.ts");
    // Type-only and re-export lines count too.
    expect(graph.get("index.ts")).toContain("call/mesh-call.ts");
  });

  it("has no import cycle", () => {
    expect(findCycles(graph)).toEqual([]);
  });

  it("has no import from a feature folder into client/ or server/", () => {
    expect(upwardImports(graph)).toEqual([]);
  });

  it("keeps observability on small event files, not on the mechanisms that emit them", () => {
    const mechanisms = [
      "retry/retry-interceptor.ts",
      "breaker/breaker-interceptor.ts",
      "balancer/balancer.ts",
      "discovery/etcd-registry.ts",
    ];
    const offending = [...graph]
      .filter(([from]) => from.startsWith("observability/"))
      .flatMap(([from, targets]) =>
        targets.filter((t) => mechanisms.includes(t)).map((t) => `${from} -> ${t}`),
      );
    expect(offending).toEqual([]);
  });

  it("detects a cycle and an upward import when there is one (the checks can fail)", () => {
    const bad = new Map([
      ["retry/a.ts", ["client/b.ts"]],
      ["client/b.ts", ["retry/a.ts"]],
    ]);
    expect(findCycles(bad)).toEqual([["retry/a.ts", "client/b.ts", "retry/a.ts"]]);
    expect(upwardImports(bad)).toEqual(["retry/a.ts -> client/b.ts"]);
  });
});
