// Suite "transport": unary echo, 64 calls in flight, 128 B and 4 KiB payloads,
// across grpc-js, stock Connect and connect-mesh, including cross pairs.

import type { BenchConfig, StackName } from "../lib/protocol.js";
import { STACK_DESCRIPTIONS } from "../lib/protocol.js";
import type { Scenario } from "../lib/scenario.js";

const PAIRS: ReadonlyArray<readonly [client: StackName, server: StackName]> = [
  ["grpc-js", "grpc-js"],
  ["connect", "connect"],
  ["mesh", "mesh"],
  ["grpc-js", "mesh"],
  ["mesh", "grpc-js"],
  ["grpc-js", "connect"],
  ["connect", "grpc-js"],
];

const PAYLOADS = [128, 4096] as const;
const IN_FLIGHT = 64;

export const transport: Scenario = {
  name: "transport",
  title: "Transport overhead: unary Echo, 64 in flight",
  notes: [
    ...Object.entries(STACK_DESCRIPTIONS).map(([name, d]) => `- \`${name}\`: ${d}.`),
    "- One HTTP/2 connection per client process; the client is a closed loop of 64 concurrent callers; every call's response length is checked.",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 3000, reps: 3 },
    quick: { warmupMs: 300, durationMs: 500, reps: 1 },
  },
  configs(): BenchConfig[] {
    const out: BenchConfig[] = [];
    for (const payloadBytes of PAYLOADS) {
      for (const [client, server] of PAIRS) {
        out.push({
          label: `${client} → ${server}`,
          client: { stack: client },
          servers: [{ stack: server }],
          payloadBytes,
          inFlight: IN_FLIGHT,
        });
      }
    }
    return out;
  },
};
