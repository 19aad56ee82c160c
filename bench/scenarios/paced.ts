// Suite "paced": the transport suite's unary echo at one fixed rate for every
// stack, so that memory, CPU per call and latency compare at the same work
// per second. In the closed loop of `transport` each stack runs as fast as it
// can, and a stack that serves more calls per second also allocates more per
// second (a larger young generation, more promoted garbage): its peak RSS
// then mixes its footprint with its speed.

import type { BenchConfig, ClientSpec, ServerSpec } from "../lib/protocol.js";
import type { Scenario } from "../lib/scenario.js";

/** RATE is below what every stack sustains at 4 KiB on the 2-core host (grpc-js ~3,000/s). */
const RATE = 2_000;
const IN_FLIGHT = 64;
const PAYLOADS = [128, 4096] as const;
const SUFFIX = `(${RATE}/s)`;
const REFERENCE = `grpc-js → grpc-js ${SUFFIX}`;

const ROWS: ReadonlyArray<{
  readonly label: string;
  readonly client: ClientSpec;
  readonly server: ServerSpec;
}> = [
  { label: REFERENCE, client: { stack: "grpc-js" }, server: { stack: "grpc-js" } },
  { label: `mesh → mesh ${SUFFIX}`, client: { stack: "mesh" }, server: { stack: "mesh" } },
  {
    label: `mesh → mesh (no side effects) ${SUFFIX}`,
    client: { stack: "mesh", options: { method: "no-side-effects" } },
    server: { stack: "mesh" },
  },
  { label: `lean → lean ${SUFFIX}`, client: { stack: "lean" }, server: { stack: "lean" } },
];

export const paced: Scenario = {
  name: "paced",
  title: `Paced unary Echo: every stack at ${RATE} calls/s, 64 callers`,
  reference: () => REFERENCE,
  notes: [
    `- The transport suite's stacks and echo (mesh: every default on, keyed side-effecting echo; \`(no side effects)\` the NO_SIDE_EFFECTS echo; \`lean\` every mesh feature off), but the client paces its ${IN_FLIGHT} callers to ${RATE} calls/s in total: each starts a call every ${IN_FLIGHT} / ${RATE} s, or at once when its previous call ran late (no catch-up bursts). So every row does the same work per second, and peak RSS, CPU per call and latency compare at equal load; a row below ${RATE} req/s could not keep up.`,
    "- Ratios compare each row with grpc-js → grpc-js at the same rate and payload.",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 4000, reps: 3 },
    quick: { warmupMs: 300, durationMs: 500, reps: 1 },
  },
  configs(): BenchConfig[] {
    const out: BenchConfig[] = [];
    for (const payloadBytes of PAYLOADS) {
      for (const row of ROWS) {
        out.push({
          label: row.label,
          client: row.client,
          servers: [row.server],
          payloadBytes,
          inFlight: IN_FLIGHT,
          ratePerSec: RATE,
        });
      }
    }
    return out;
  },
};
