// Suite "paced": the transport suite's unary echo at one fixed rate for every
// stack, so that memory, CPU per call and latency compare at the same work
// per second. In the closed loop of `transport` each stack runs as fast as it
// can, and a stack that serves more calls per second also allocates more per
// second (a larger young generation, more promoted garbage): its peak RSS
// then mixes its footprint with its speed.

import type { Scenario } from "../lib/scenario.js";
import { IN_FLIGHT, LABELS, PAYLOADS, ROWS, type Row, unaryConfigs } from "./transport.js";

/** RATE is below what every stack sustains at 4 KiB on the 2-core host (grpc-js ~3,000/s). */
const RATE = 2_000;
const SUFFIX = `(${RATE}/s)`;

/** PACED_ROWS are the transport suite's reference, keyed mesh, no-side-effects mesh and lean rows. */
const PACED_ROWS: readonly Row[] = [
  LABELS.reference,
  LABELS.mesh,
  LABELS.meshNoSideEffects,
  LABELS.lean,
].map((label) => {
  const row = ROWS.find((r) => r.label === label);
  if (row === undefined) throw new Error(`paced: no transport row ${label}`);
  return { ...row, label: `${label} ${SUFFIX}` };
});

export const paced: Scenario = {
  name: "paced",
  title: `Paced unary Echo: every stack at ${RATE} calls/s, 64 callers`,
  reference: () => `${LABELS.reference} ${SUFFIX}`,
  notes: [
    `- The transport suite's stacks and echo (mesh: every default on, keyed side-effecting echo; \`(no side effects)\` the NO_SIDE_EFFECTS echo; \`lean\` every mesh feature off), but the client paces its ${IN_FLIGHT} callers to ${RATE} calls/s in total: each starts a call every ${IN_FLIGHT} / ${RATE} s, or at once when its previous call ran late (no catch-up bursts). So every row does the same work per second, and peak RSS, CPU per call and latency compare at equal load; a row below ${RATE} req/s could not keep up.`,
    "- Ratios compare each row with grpc-js → grpc-js at the same rate and payload.",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 4000, reps: 3 },
    quick: { warmupMs: 300, durationMs: 500, reps: 1 },
  },
  configs: () => unaryConfigs(PACED_ROWS, PAYLOADS, { ratePerSec: RATE }),
};
