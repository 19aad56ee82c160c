import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Generous: child-process tests (tsx start-up) on an oversubscribed host
    // take many times their quiet-host time; assertions never time anything.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real servers on loopback; two cores are shared.
    fileParallelism: true,
    maxWorkers: 2,
    // Servers and transports log to stdout by default; tests capture logs explicitly.
    env: { MESH_LOG_LEVEL: process.env.MESH_LOG_LEVEL ?? "silent" },
  },
});
