// Suite "transport": unary echo, 64 calls in flight, 128 B and 4 KiB payloads:
// the grpc-js reference, stock Connect for context, connect-mesh with every
// default on (keyed side-effecting echo, and a NO_SIDE_EFFECTS echo), the
// mesh's data path with every mesh feature off ("lean"), and the cross pairs
// between grpc-js and the mesh. The report adds each row's ratios to
// grpc-js → grpc-js, the figures issue 13's acceptance is stated in.

import type { BenchConfig, ClientSpec, ServerSpec } from "../lib/protocol.js";
import { STACK_DESCRIPTIONS } from "../lib/protocol.js";
import type { Scenario } from "../lib/scenario.js";

const REFERENCE = "grpc-js → grpc-js";

interface Row {
  readonly label: string;
  readonly client: ClientSpec;
  readonly server: ServerSpec;
}

const NO_SIDE_EFFECTS = { method: "no-side-effects" } as const;

/**
 * ROWS are measured in this order within each repetition. The connect ↔
 * grpc-js cross pairs were dropped to keep a full run near 5 minutes: they
 * say nothing about the mesh.
 */
const ROWS: readonly Row[] = [
  { label: REFERENCE, client: { stack: "grpc-js" }, server: { stack: "grpc-js" } },
  { label: "connect → connect", client: { stack: "connect" }, server: { stack: "connect" } },
  { label: "mesh → mesh", client: { stack: "mesh" }, server: { stack: "mesh" } },
  {
    label: "mesh → mesh (no side effects)",
    client: { stack: "mesh", options: NO_SIDE_EFFECTS },
    server: { stack: "mesh" },
  },
  { label: "lean → lean", client: { stack: "lean" }, server: { stack: "lean" } },
  { label: "grpc-js → mesh", client: { stack: "grpc-js" }, server: { stack: "mesh" } },
  { label: "mesh → grpc-js", client: { stack: "mesh" }, server: { stack: "grpc-js" } },
];

const PAYLOADS = [128, 4096] as const;
const IN_FLIGHT = 64;

export const transport: Scenario = {
  name: "transport",
  title: "Transport overhead: unary Echo, 64 in flight",
  reference: REFERENCE,
  notes: [
    ...Object.entries(STACK_DESCRIPTIONS).map(([name, d]) => `- \`${name}\`: ${d}.`),
    "- Rows call `test.v1.EchoService/Echo` (idempotency level unknown: a mesh client adds an `idempotency-key` and a mesh server de-duplicates it, storing each outcome), except `(no side effects)`, which calls `test.v1.EchoNoSideEffectsService/EchoNoSideEffects`, declared `NO_SIDE_EFFECTS` (no key, no de-duplication). The grpc-js stack can call either (`method` option); its reference row calls Echo.",
    "- One HTTP/2 connection per client process; the client is a closed loop of 64 concurrent callers; every call's response length is checked.",
    "- The connect ↔ grpc-js cross pairs are no longer measured (they keep a full run near 5 min); see earlier results in git history.",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 3000, reps: 3 },
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
        });
      }
    }
    return out;
  },
};
