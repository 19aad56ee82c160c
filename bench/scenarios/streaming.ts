// Suite "streaming": server-streaming messages/s and bidi ping-pong round
// trips/s, 128 B messages, for grpc-js, connect-mesh (every default on) and
// stock Connect, with CPU per message or round trip. The report adds ratios
// to grpc-js → grpc-js of the same workload.

import type { BenchConfig, StackName, Workload } from "../lib/protocol.js";
import type { Scenario } from "../lib/scenario.js";

const PAIRS: readonly StackName[] = ["grpc-js", "mesh", "connect"];

const PAYLOAD_BYTES = 128;
/** SERVER_STREAMS concurrent server-streaming calls, each asking for STREAM_MESSAGES messages. */
const SERVER_STREAMS = 8;
/** STREAM_MESSAGES per call: long enough that call set-up is a small share of the cost. */
const STREAM_MESSAGES = 1000;
/** BIDI_STREAMS concurrent bidi streams, each with one round trip outstanding. */
const BIDI_STREAMS = 16;

const WORKLOADS: ReadonlyArray<{
  readonly workload: Workload;
  readonly suffix: string;
  readonly inFlight: number;
}> = [
  { workload: "server-stream", suffix: "server stream", inFlight: SERVER_STREAMS },
  { workload: "bidi", suffix: "bidi ping-pong", inFlight: BIDI_STREAMS },
];

export const streaming: Scenario = {
  name: "streaming",
  title: "Streaming: server-stream messages/s and bidi round trips/s, 128 B",
  unit: { rate: "msg/s", per: "msg" },
  reference: (config) =>
    config.endsWith(WORKLOADS[1]?.suffix ?? "bidi ping-pong")
      ? "grpc-js → grpc-js bidi ping-pong"
      : "grpc-js → grpc-js server stream",
  notes: [
    `- \`server stream\`: ${SERVER_STREAMS} concurrent \`EchoServerStream\` calls, each asking for ${STREAM_MESSAGES} copies of a ${PAYLOAD_BYTES} B payload, sent as fast as the client reads them (grpc-js waits for "drain", Connect's async iterables pull); a caller starts its next call when one ends. One unit is one message received; its latency is the gap since the caller's previous message.`,
    `- \`bidi ping-pong\`: ${BIDI_STREAMS} concurrent \`EchoBidi\` streams, each sending one ${PAYLOAD_BYTES} B message and awaiting its answer before the next. One unit is one round trip.`,
    "- Stacks as in the transport suite (mesh: every default on, logging at info to a file; a mesh server does not de-duplicate streams). Ratios compare each row with grpc-js → grpc-js of the same workload (the `in flight` column tells them apart).",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 3000, reps: 3 },
    quick: { warmupMs: 300, durationMs: 500, reps: 1 },
  },
  configs(): BenchConfig[] {
    const out: BenchConfig[] = [];
    for (const w of WORKLOADS) {
      for (const stack of PAIRS) {
        out.push({
          label: `${stack} → ${stack} ${w.suffix}`,
          client: { stack },
          servers: [{ stack }],
          payloadBytes: PAYLOAD_BYTES,
          inFlight: w.inFlight,
          workload: w.workload,
          ...(w.workload === "server-stream" ? { streamMessages: STREAM_MESSAGES } : {}),
        });
      }
    }
    return out;
  },
};
