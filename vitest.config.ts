import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Integration tests start real servers on loopback; two cores are shared.
    fileParallelism: true,
    maxWorkers: 2,
    // Servers and transports log to stdout by default; tests capture logs explicitly.
    env: { MESH_LOG_LEVEL: process.env.MESH_LOG_LEVEL ?? "silent" },
  },
});
