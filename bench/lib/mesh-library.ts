// The connect-mesh library a benchmark child runs: the compiled package in
// dist/ (what a deployment runs), not src/ transpiled by tsx at load time,
// which costs every process about 20 MB of RSS that no user pays (grpc-js and
// Connect are precompiled JavaScript in node_modules too). BENCH_MESH_SOURCE=1
// loads src/ instead. The runner builds dist/ first when it is older than
// src/ (ensureMeshBuild), so a benchmark never measures stale code.

import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

type MeshLibrary = typeof import("../../src/index.js");

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DIST_ENTRY = join(ROOT, "dist", "src", "index.js");

function fromSource(): boolean {
  return process.env.BENCH_MESH_SOURCE === "1";
}

/** loadMeshLibrary imports connect-mesh from dist/ (or src/ with BENCH_MESH_SOURCE=1). */
export async function loadMeshLibrary(): Promise<MeshLibrary> {
  if (fromSource()) return import("../../src/index.js");
  if (!existsSync(DIST_ENTRY)) {
    throw new Error(`${DIST_ENTRY} is missing: run \`npm run build\` (the bench runner does)`);
  }
  return (await import(DIST_ENTRY)) as MeshLibrary;
}

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtimeMs(path));
    else if (entry.name.endsWith(".ts")) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * ensureMeshBuild runs `npm run build` (tsc, then one bundled module) when
 * dist/ is missing or older than any file in src/ or gen/. Call it in the
 * runner before forking children.
 */
export function ensureMeshBuild(log: (line: string) => void = console.error): void {
  if (fromSource()) return;
  const built = existsSync(DIST_ENTRY) ? statSync(DIST_ENTRY).mtimeMs : 0;
  const sources = Math.max(newestMtimeMs(join(ROOT, "src")), newestMtimeMs(join(ROOT, "gen")));
  if (built >= sources) return;
  log("building dist/ (npm run build): the benchmark runs the packaged library");
  execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
}
