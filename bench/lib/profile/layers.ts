// Which layer of the stack a V8 CPU-profile frame belongs to, from its script
// URL and function name. Pure, so the table can be checked by eye.

/** SPECIAL_FRAMES are V8's pseudo-frames, by function name. */
const SPECIAL_FRAMES: Readonly<Record<string, string>> = {
  "(garbage collector)": "GC",
  "(idle)": "idle",
  "(program)": "program (V8, native)",
  "(root)": "program (V8, native)",
};

/** PINO_PACKAGES are pino and the packages it writes through. */
const PINO_PACKAGES = new Set([
  "pino",
  "sonic-boom",
  "thread-stream",
  "fast-redact",
  "quick-format-unescaped",
  "atomic-sleep",
  "on-exit-leak-free",
  "pino-std-serializers",
  "safe-stable-stringify",
  "fast-safe-stringify",
  "real-require",
  "process-warning",
  "pino-abstract-transport",
  "@pinojs/redact",
]);

/** NODE_LAYERS map Node's internal module prefixes (after `node:`) to a layer; first match wins. */
const NODE_LAYERS: ReadonlyArray<readonly [prefix: string, layer: string]> = [
  ["internal/http2", "node:http2"],
  ["http2", "node:http2"],
  ["internal/streams", "node:streams"],
  ["stream", "node:streams"],
  ["internal/webstreams", "node:streams"],
  ["net", "node:net"],
  ["internal/net", "node:net"],
  ["internal/stream_base_commons", "node:net"],
  ["internal/timers", "node:timers"],
  ["timers", "node:timers"],
  ["internal/async_hooks", "node:async_hooks"],
  ["async_hooks", "node:async_hooks"],
  ["internal/async_local_storage", "node:async_hooks"],
  ["internal/abort_controller", "node:AbortController/DOMException"],
  ["internal/per_context/domexception", "node:AbortController/DOMException"],
  ["internal/event_target", "node:AbortController/DOMException"],
  ["events", "node:events"],
  ["internal/process/task_queues", "node:task queues"],
  ["internal/process/promises", "node:task queues"],
  ["internal/child_process", "node:child_process (bench IPC)"],
  ["child_process", "node:child_process (bench IPC)"],
  ["internal/deps/undici", "node:undici (Headers)"],
  ["internal/url", "node:url"],
  ["buffer", "node:buffer"],
  ["internal/buffer", "node:buffer"],
  ["internal/crypto", "node:crypto"],
  ["crypto", "node:crypto"],
  ["fs", "node:fs"],
  ["internal/fs", "node:fs"],
];

/**
 * layerOf names the layer of one frame, or undefined for a native frame
 * with no script (a V8 builtin or C++ binding), which the caller charges to
 * the nearest JavaScript caller.
 * `repoRoot` is the worktree's absolute path with a trailing slash.
 */
export function layerOf(functionName: string, url: string, repoRoot: string): string | undefined {
  const special = SPECIAL_FRAMES[functionName];
  if (special !== undefined && url === "") {
    return special;
  }
  if (url === "") {
    return undefined;
  }
  if (url.startsWith("node:")) {
    const mod = url.slice("node:".length);
    for (const [prefix, layer] of NODE_LAYERS) {
      if (mod === prefix || mod.startsWith(`${prefix}/`) || mod.startsWith(`${prefix}_`)) {
        return layer;
      }
    }
    return "node:other";
  }
  const path = url.startsWith("file://") ? decodeURIComponent(url.slice("file://".length)) : url;
  const nm = path.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    const rest = path.slice(nm + "/node_modules/".length).split("/");
    const pkg = rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1] ?? ""}` : (rest[0] ?? "");
    if (pkg.startsWith("@connectrpc/")) {
      return "Connect-ES (@connectrpc)";
    }
    if (pkg.startsWith("@bufbuild/")) {
      return "protobuf-es (@bufbuild)";
    }
    if (pkg.startsWith("@grpc/")) {
      return "grpc-js (@grpc)";
    }
    if (PINO_PACKAGES.has(pkg)) {
      return "pino";
    }
    if (pkg === "tsx" || pkg === "esbuild" || pkg === "get-tsconfig") {
      return "tsx loader";
    }
    return `dep:${pkg}`;
  }
  if (path.startsWith(repoRoot)) {
    let rel = path.slice(repoRoot.length).split("/");
    // The benchmark runs the compiled library: dist/src/… counts as src/…
    if (rel[0] === "dist") rel = rel.slice(1);
    if (rel[0] === "src") {
      // src/<folder>/x.ts → mesh src/<folder>; src/x.ts → mesh src/x
      const top = rel.length > 2 ? rel[1] : (rel[1] ?? "").replace(/\.[cm]?[jt]s$/, "");
      return `mesh src/${top}`;
    }
    if (rel[0] === "gen") {
      return "gen (generated descriptors)";
    }
    if (rel[0] === "bench") {
      return "bench harness";
    }
    return `repo ${rel[0] ?? ""}`;
  }
  return "other";
}
