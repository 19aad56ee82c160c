// Which libraries a tsx bench child loads before tsx's loader hooks are in
// place. Children normally run bundled on plain node (../child-build.ts) and
// need none of this; with BENCH_MESH_SOURCE=1 they run their .ts sources
// through `--import tsx`, whose hooks send every ES module's resolve and load
// through the hooks thread, a cost per module no deployment pays and that
// weighs on the stacks unevenly (Node 20.20, import only: connect-mesh's
// dist/, ~340 ES modules, 75 MB RSS plain and 130 MB under tsx; @grpc/grpc-js,
// CommonJS, 54 MB and 83 MB). So each stack's ES-module libraries are given
// to such a child as `--import` flags ahead of tsx: Node's own loader loads
// them, and the child's later imports of the same URLs find them loaded. The
// mesh itself is src/ in that mode and must go through tsx.

import type { StackName } from "../protocol.js";

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
 * registers its hooks (none for the mesh: in tsx mode it is src/, which needs
 * tsx). Specifiers are resolved here to file URLs, the URLs the child's own
 * imports resolve to. A bundled child ignores them (process.ts).
 */
export function preloadFlags(stack: StackName): string[] {
  if (stack === "mesh" || stack === "lean") return [];
  return LIBRARIES[stack].flatMap((s) => ["--import", import.meta.resolve(s)]);
}
