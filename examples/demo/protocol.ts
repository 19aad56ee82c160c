// What the demo's parent process and its replica processes tell each other
// (child_process IPC, JSON).
import type { FaultCounts } from "../../src/index.js";

/** ReplicaRole is what a replica does wrong in the demo. */
export type ReplicaRole = "slow" | "flaky" | "killed" | "steady";

/** ReplicaConfig is everything a replica process needs, passed as JSON in argv[2]. */
export interface ReplicaConfig {
  /** name is the replica's instance id and `served_by`, e.g. `replica-2`. */
  readonly name: string;
  readonly role: ReplicaRole;
  /** incarnation counts restarts: 1 for the first process of this name. */
  readonly incarnation: number;
  /** logFile receives JSON log lines (appended; every process writes to it). */
  readonly logFile: string;
  readonly registry:
    | { readonly kind: "mesh"; readonly dir: string }
    | { readonly kind: "etcd"; readonly endpoints: readonly string[]; readonly prefix: string };
  readonly store:
    | { readonly kind: "file"; readonly dir: string }
    | { readonly kind: "redis"; readonly url: string; readonly keyPrefix: string };
  /** ordersDir is the order repository shared by the replicas. */
  readonly ordersDir: string;
  /** executionsFile gets one line per CreateOrder handler run: `<key>\t<replica>#<incarnation>`. */
  readonly executionsFile: string;
  /** identity (--mtls) names the replica's PEM files: it serves mutual TLS with them. */
  readonly identity?: {
    readonly keyFile: string;
    readonly certFile: string;
    readonly caFile: string;
  };
}

/** ReplicaStats is a replica's counters since it started. */
export interface ReplicaStats {
  /** requests counts OrderService calls received, by method name. */
  readonly requests: Readonly<Record<string, number>>;
  /** faults counts injected delays and aborts, by `pkg.Service/Method`. */
  readonly faults: Readonly<Record<string, FaultCounts>>;
  /** lostResponses counts CreateOrder answers dropped after the order was stored. */
  readonly lostResponses: number;
  /** executions counts CreateOrder handler runs. */
  readonly executions: number;
  /** idempotency counts idempotency events by type (claimed, replayed, waiting...). */
  readonly idempotency: Readonly<Record<string, number>>;
}

/** ReplicaMessage is what a replica sends its parent. */
export type ReplicaMessage =
  | { readonly type: "ready"; readonly address: string; readonly pid: number }
  | { readonly type: "stats"; readonly stats: ReplicaStats }
  | { readonly type: "registry"; readonly event: string; readonly address?: string }
  | { readonly type: "stopped"; readonly stats: ReplicaStats };

/** ParentMessage is what the parent sends a replica. */
export type ParentMessage = { readonly type: "stop" };

/** DEMO_TRUST_DOMAIN is the SPIFFE trust domain of the demo's dev CA (--mtls). */
export const DEMO_TRUST_DOMAIN = "demo.local";
/** REPLICA_SPIFFE_ID is every replica's identity (one service account); CLIENT_SPIFFE_ID the caller's. */
export const REPLICA_SPIFFE_ID = `spiffe://${DEMO_TRUST_DOMAIN}/ns/shop/sa/orders`;
export const CLIENT_SPIFFE_ID = `spiffe://${DEMO_TRUST_DOMAIN}/ns/shop/sa/checkout`;

/** SERVICE is the name the replicas register under. */
export const SERVICE = "orders";

/** ROLE_TEXT says what each role does, for the status and the summary. */
export const ROLE_TEXT: Readonly<Record<ReplicaRole, string>> = {
  slow: "slow: +20-40 ms per call",
  flaky: "flaky: 30% UNAVAILABLE, 5% of CreateOrder answers lost",
  killed: "SIGKILLed mid-run, then restarted",
  steady: "healthy",
};
