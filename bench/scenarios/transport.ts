// Suite "transport": unary echo, 64 calls in flight, 128 B and 4 KiB payloads:
// the grpc-js reference, stock Connect for context, connect-mesh with every
// default on (keyed side-effecting echo, and a NO_SIDE_EFFECTS echo), the
// mesh's data path with every mesh feature off ("lean"), and the cross pairs
// between grpc-js and the mesh. The report adds each row's ratios to
// grpc-js → grpc-js, the figures issue 13's acceptance is stated in.

import type { BenchConfig, ClientSpec, ServerSpec } from "../lib/protocol.js";
import { STACK_DESCRIPTIONS } from "../lib/protocol.js";
import type { ScenarioGoals } from "../lib/report.js";
import type { Scenario } from "../lib/scenario.js";
import { tlsStackOptions } from "../lib/stacks/tls-options.js";

const REFERENCE = "grpc-js → grpc-js";
const TLS_REFERENCE = "grpc-js → grpc-js (TLS)";
const MTLS_REFERENCE = "grpc-js → grpc-js (mTLS)";
const MESH_MTLS = "mesh → mesh (mTLS)";
const MESH_MTLS_NO_SIDE_EFFECTS = "mesh → mesh (mTLS, no side effects)";

/** Row is one client → server pair of the unary echo. */
export interface Row {
  readonly label: string;
  readonly client: ClientSpec;
  readonly server: ServerSpec;
}

const NO_SIDE_EFFECTS = { method: "no-side-effects" } as const;

/** LABELS names the rows other suites (paced) measure too. */
export const LABELS = Object.freeze({
  reference: REFERENCE,
  mesh: "mesh → mesh",
  meshNoSideEffects: "mesh → mesh (no side effects)",
  lean: "lean → lean",
});

/**
 * ROWS are measured in this order within each repetition. The connect ↔
 * grpc-js cross pairs were dropped to keep a full run near 5 minutes: they
 * say nothing about the mesh.
 */
export const ROWS: readonly Row[] = [
  { label: REFERENCE, client: { stack: "grpc-js" }, server: { stack: "grpc-js" } },
  { label: "connect → connect", client: { stack: "connect" }, server: { stack: "connect" } },
  { label: LABELS.mesh, client: { stack: "mesh" }, server: { stack: "mesh" } },
  {
    label: LABELS.meshNoSideEffects,
    client: { stack: "mesh", options: NO_SIDE_EFFECTS },
    server: { stack: "mesh" },
  },
  { label: LABELS.lean, client: { stack: "lean" }, server: { stack: "lean" } },
  { label: "grpc-js → mesh", client: { stack: "grpc-js" }, server: { stack: "mesh" } },
  { label: "mesh → grpc-js", client: { stack: "mesh" }, server: { stack: "grpc-js" } },
];

export const PAYLOADS = [128, 4096] as const;
export const IN_FLIGHT = 64;

/** unaryConfigs is every row at every payload, IN_FLIGHT callers, plus `extra`. */
export function unaryConfigs(
  rows: readonly Row[],
  payloads: readonly number[],
  extra: Partial<BenchConfig> = {},
): BenchConfig[] {
  return payloads.flatMap((payloadBytes) =>
    rows.map((row) => ({
      label: row.label,
      client: row.client,
      servers: [row.server],
      payloadBytes,
      inFlight: IN_FLIGHT,
      ...extra,
    })),
  );
}

/**
 * TLS_ROWS secure the reference and the full mesh stack: TLS (server
 * certificate, host name checked) and mutual TLS (SPIFFE identities from the
 * dev CA; the mesh pins the server's SPIFFE ID and serves `identity`). 128 B
 * only: the handshake happens once per connection, so the rows measure the
 * per-call cost of encryption and identity, which a larger payload only adds
 * AES time to, the same in both stacks (OpenSSL). Built lazily: the
 * certificates are made when the suite runs.
 */
function tlsRows(): Row[] {
  const rows: Row[] = [];
  for (const [mode, suffix] of [
    ["tls", "TLS"],
    ["mtls", "mTLS"],
  ] as const) {
    const options = tlsStackOptions(mode);
    rows.push(
      {
        label: `grpc-js → grpc-js (${suffix})`,
        client: { stack: "grpc-js", options },
        server: { stack: "grpc-js", options },
      },
      {
        label: `mesh → mesh (${suffix})`,
        client: { stack: "mesh", options },
        server: { stack: "mesh", options },
      },
    );
  }
  // The full mesh over mutual TLS calling the NO_SIDE_EFFECTS echo (no key,
  // no de-duplication): the mTLS counterpart of `mesh → mesh (no side effects)`.
  const mtlsNoSideEffects = tlsStackOptions("mtls");
  rows.push({
    label: MESH_MTLS_NO_SIDE_EFFECTS,
    client: { stack: "mesh", options: { ...mtlsNoSideEffects, ...NO_SIDE_EFFECTS } },
    server: { stack: "mesh", options: mtlsNoSideEffects },
  });
  // The mesh's data path with every mesh feature off, over mutual TLS.
  const mtls = tlsStackOptions("mtls");
  rows.push({
    label: "lean → lean (mTLS)",
    client: { stack: "lean", options: mtls },
    server: { stack: "lean", options: mtls },
  });
  return rows;
}

const TLS_PAYLOAD = 128;

/** referenceOf compares TLS rows with grpc-js over the same security, the rest with grpc-js h2c. */
function referenceOf(label: string): string {
  if (label.endsWith("(mTLS)") || label.includes("(mTLS,")) return MTLS_REFERENCE;
  if (label.endsWith("(TLS)")) return TLS_REFERENCE;
  return REFERENCE;
}

export const transport: Scenario & ScenarioGoals = {
  name: "transport",
  title: "Transport overhead: unary Echo, 64 in flight",
  reference: referenceOf,
  goals(_results, ratios) {
    const cpuRatio = (config: string) =>
      ratios.find((r) => r.config === config && r.payload_bytes === TLS_PAYLOAD)?.cpu_ratio ?? null;
    const keyed = cpuRatio(MESH_MTLS);
    const plain = cpuRatio(MESH_MTLS_NO_SIDE_EFFECTS);
    return [
      {
        goal: "mTLS mesh → mesh (keyed echo, de-duplicated) CPU per call (client + server) vs grpc-js → grpc-js mTLS, 128 B",
        target: "≤ 1.0x",
        measured: keyed,
        goal_met: keyed === null ? null : keyed <= 1.0,
      },
      {
        goal: "mTLS mesh → mesh (no side effects) CPU per call (client + server) vs grpc-js → grpc-js mTLS, 128 B",
        target: "≤ 1.0x",
        measured: plain,
        goal_met: plain === null ? null : plain <= 1.0,
      },
    ];
  },
  notes: [
    ...Object.entries(STACK_DESCRIPTIONS).map(([name, d]) => `- \`${name}\`: ${d}.`),
    "- Rows call `test.v1.EchoService/Echo` (idempotency level unknown: a mesh client adds an `idempotency-key` and a mesh server de-duplicates it, storing each outcome), except `(no side effects)`, which calls `test.v1.EchoNoSideEffectsService/EchoNoSideEffects`, declared `NO_SIDE_EFFECTS` (no key, no de-duplication). The grpc-js stack can call either (`method` option); its reference row calls Echo.",
    "- One HTTP/2 connection per client process; the client is a closed loop of 64 concurrent callers; every call's response length is checked.",
    "- The connect ↔ grpc-js cross pairs are no longer measured (they keep a full run near 5 min); see earlier results in git history.",
    "- `(TLS)` and `(mTLS)` rows (128 B): TLS 1.3 on loopback with EC P-256 certificates from the dev CA (`createDevCertificateAuthority`, made when the suite starts). TLS: the server presents its certificate, the client checks it and the host name (grpc-js `createSsl(ca)`, mesh `tls: { ca }`). mTLS: both present SPIFFE certificates; grpc-js `ServerCredentials.createSsl(ca, [cert], true)` / `credentials.createSsl(ca, key, cert)`, mesh `identity: { source }` on the server (client certificate required, peer identity per call, `peer.identity` logged) and `identity` + `serverIdentities` (the server's SPIFFE ID pinned) on the client. `lean → lean (mTLS)` is the lean stack (every mesh feature off) with the same mTLS options; `mesh → mesh (mTLS, no side effects)` is the full mesh over mTLS calling the NO_SIDE_EFFECTS echo. Their ratios are to grpc-js with the same security; the goal below is the full mesh's mTLS CPU ratio.",
  ],
  timing: {
    full: { warmupMs: 1500, durationMs: 3000, reps: 3 },
    quick: { warmupMs: 300, durationMs: 500, reps: 1 },
  },
  configs(opts): BenchConfig[] {
    // Quick (CI smoke) runs measure only the two rows the goal compares.
    const secured = tlsRows().filter(
      (r) =>
        !opts.quick ||
        r.label === MTLS_REFERENCE ||
        r.label === MESH_MTLS ||
        r.label === MESH_MTLS_NO_SIDE_EFFECTS,
    );
    return [...unaryConfigs(ROWS, PAYLOADS), ...unaryConfigs(secured, [TLS_PAYLOAD])];
  },
};
