// Which libraries a bench child loads before tsx's loader hooks are in place.
//
// Children run TypeScript through `--import tsx`, which registers module
// hooks: from then on Node sends every ES module's resolve and load through
// the hooks thread, and tsx keeps its own copy of each source. No deployment
// pays that, but it is paid per ES module, so it weighed on the stacks very
// unevenly: measured on Node 20.20, importing connect-mesh's dist/ (~340 ES
// modules with Connect and protobuf-es) costs 75 MB RSS with plain node and
// 130 MB under tsx (a no-op hook alone: 100 MB), while @grpc/grpc-js (CommonJS)
// costs 54 MB and 83 MB. A lean mesh server under load peaked at 108 MB with
// plain node against grpc-js's 105 MB, but at 148 MB against 108 MB as a bench
// child.
//
// So each stack's ES-module libraries (what a user's process would load) are
// given to the child as `--import` flags ahead of tsx: Node's own loader loads
// them, and the child's later imports of the same URLs find them loaded. Only
// the bench's own glue (TypeScript) goes through tsx, the same for every stack.

import type { StackName } from "../protocol.js";

// The entry ../mesh-library.ts loads (BENCH_MESH_SOURCE=1: src/, through tsx).
const DIST_ENTRY_URL = new URL("../../../dist/src/index.js", import.meta.url).href;

// The protobuf-es entries every stack's generated code imports.
const PROTOBUF = ["@bufbuild/protobuf", "@bufbuild/protobuf/codegenv2"] as const;

const LIBRARIES: Record<Exclude<StackName, "mesh" | "lean">, readonly string[]> = {
  // grpc-js is CommonJS: require() does not go through the hooks thread, and
  // `--import` would load it through the ES-module translator instead, which
  // is not how its users load it (measured: its server then peaked ~35 MB
  // higher, its young generation doubling). It stays with the child's require.
  "grpc-js": [...PROTOBUF],
  connect: ["@connectrpc/connect", "@connectrpc/connect-node", ...PROTOBUF],
};

/**
 * preloadFlags are the Node flags that load `stack`'s libraries before tsx
 * registers its hooks (empty for the mesh with BENCH_MESH_SOURCE=1: src/
 * needs tsx). Specifiers are resolved here to file URLs, the URLs the child's
 * own imports resolve to.
 */
export function preloadFlags(stack: StackName): string[] {
  const urls =
    stack === "mesh" || stack === "lean"
      ? process.env.BENCH_MESH_SOURCE === "1"
        ? []
        : [DIST_ENTRY_URL]
      : LIBRARIES[stack].map((s) => import.meta.resolve(s));
  return urls.flatMap((u) => ["--import", u]);
}
