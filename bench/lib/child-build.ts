// The bench children as a deployment runs them: plain JavaScript on plain
// `node`, with no TypeScript loader in the process. Under `--import tsx`
// every child paid tsx's hooks thread (its own V8 isolate, ~25-30 MB RSS in
// every process whatever it loads) and, for ES modules loaded through the
// hooks, a cost per module that weighed on the stacks unevenly (the mesh and
// Connect are ~340 ES modules, grpc-js is CommonJS): peak RSS measured the
// harness more than the library. So the runner bundles bench/server.ts and
// bench/client.ts (the bench's own glue and the generated echo service) with
// esbuild into bench/.build/ (gitignored); every npm package stays external
// and is loaded from node_modules by Node itself, and connect-mesh from dist/
// (mesh-library.ts), exactly as a user's process loads them. Code splitting
// keeps each stack in its own chunk, so a child loads only the stack it runs.
// BENCH_MESH_SOURCE=1 (connect-mesh from src/) keeps the tsx children.

import { mkdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BENCH_DIR = fileURLToPath(new URL("../", import.meta.url));
const OUT_DIR = fileURLToPath(new URL("../.build/", import.meta.url));

/**
 * ChildFiles are the entry files the runner forks: `.mjs` bundles run on
 * plain node, `.ts` sources through tsx (process.ts tells them apart).
 */
export interface ChildFiles {
  readonly server: string;
  readonly client: string;
}

let built: ChildFiles | undefined;

/**
 * childFiles bundles the children once per runner process (~0.3 s) and
 * returns their paths; with BENCH_MESH_SOURCE=1 it returns the .ts sources.
 */
export async function childFiles(): Promise<ChildFiles> {
  if (process.env.BENCH_MESH_SOURCE === "1") {
    return {
      server: `${BENCH_DIR}server.ts`,
      client: `${BENCH_DIR}client.ts`,
    };
  }
  if (built !== undefined) return built;
  const { build } = await import("esbuild");
  rmSync(OUT_DIR, { recursive: true, force: true });
  mkdirSync(OUT_DIR, { recursive: true });
  await build({
    entryPoints: { server: `${BENCH_DIR}server.ts`, client: `${BENCH_DIR}client.ts` },
    outdir: OUT_DIR,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    sourcemap: false,
    logLevel: "warning",
    plugins: [
      {
        // connect-mesh itself is never bundled: mesh-library.ts imports dist/
        // at run time (its src/ import is for BENCH_MESH_SOURCE=1 only).
        name: "mesh-external",
        setup(b) {
          b.onResolve({ filter: /\/src\/index\.js$/ }, (args) => ({
            path: args.path,
            external: true,
          }));
        },
      },
    ],
  });
  // Chunks sit next to the entries in bench/.build/, one level under bench/
  // like bench/lib/, so the relative URLs in mesh-library.ts still hold.
  built = { server: `${OUT_DIR}server.mjs`, client: `${OUT_DIR}client.mjs` };
  return built;
}
