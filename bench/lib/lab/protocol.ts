// IPC shapes of the "lab" children used by the resilience suites (balancing,
// discovery, retries): bench/lib/lab/replica-child.ts hosts one or more mesh
// servers with fault injection and server-side attempt counters;
// bench/lib/lab/loadgen-child.ts drives one client (connect-mesh or grpc-js)
// at a fixed rate or a fixed concurrency and records phases and events.
// Everything here must be JSON-serialisable. Times called `...AtMs` are epoch
// milliseconds with sub-millisecond precision (performance.timeOrigin +
// performance.now()), comparable across processes of one machine.

import type { FaultConfig } from "../../../src/index.js";

/** RegistrySpec names the discovery backend a replica registers with or a client resolves through. */
export type RegistrySpec =
  | { readonly kind: "etcd"; readonly endpoints: readonly string[]; readonly leaseTtlMs?: number }
  | { readonly kind: "mesh"; readonly dir: string; readonly leaseTtlMs?: number };

/** ReplicaSpec is one mesh server in a replica child. */
export interface ReplicaSpec {
  /** name is the replica's name; GetOrder answers carry it in `order.served_by`. */
  readonly name: string;
  /** faults is the fault injector's initial config (service time: `default.delayMs`). */
  readonly faults?: FaultConfig;
  /**
   * workers makes the injected delay a service time with a capacity: the
   * replica serves at most `workers` calls at a time, first come first
   * served, and the others wait in its queue (as a single-threaded Node
   * server doing CPU work does with workers = 1). Unset: every call is
   * delayed independently, whatever the load (no queueing).
   */
  readonly workers?: number;
}

export interface ReplicaInit {
  readonly replicas: readonly ReplicaSpec[];
  /** registration registers every replica of the child with `service` in the registry. */
  readonly registration?: { readonly registry: RegistrySpec; readonly service: string };
}

export interface ReplicaReady {
  readonly replicas: ReadonlyArray<{
    readonly name: string;
    readonly address: string;
    /** readyAtMs is when listen() resolved: bound, SERVING and (if configured) registered. */
    readonly readyAtMs: number;
  }>;
}

/** SetFaults replaces the fault config of the named replicas (all when omitted). */
export interface SetFaults {
  readonly names?: readonly string[];
  readonly config: FaultConfig;
}

export interface SetFaultsDone {
  /** atMs is when the new config took effect. */
  readonly atMs: number;
}

/** ReplicaCounts are cumulative server-side counts since start, per replica. */
export interface ReplicaCounts {
  readonly atMs: number;
  readonly replicas: ReadonlyArray<{
    readonly name: string;
    /** attempts counts every request that reached the handler chain (injected faults included). */
    readonly attempts: number;
    readonly ok: number;
    readonly errors: number;
    /**
     * byPhase counts attempts, ok and errors by `<x-bench-client>/<x-bench-phase>`
     * request headers: the client and the phase in which the call started.
     */
    readonly byPhase: Readonly<Record<string, PhaseCount>>;
  }>;
}

export interface PhaseCount {
  readonly attempts: number;
  readonly ok: number;
  readonly errors: number;
}

/** ClientSpec says which client library the load generator drives, and how. */
export type LabClientSpec =
  | {
      readonly kind: "mesh";
      readonly target: string;
      /** options are passed to createMeshTransport (JSON subset: policy, retry, circuitBreaker...). */
      readonly options?: Readonly<Record<string, unknown>>;
      readonly registry?: RegistrySpec;
    }
  | {
      readonly kind: "grpc-js";
      /** target is a grpc-js target, e.g. `ipv4:127.0.0.1:1,127.0.0.1:2`. */
      readonly target: string;
      /** serviceConfig goes into the `grpc.service_config` channel option. */
      readonly serviceConfig?: unknown;
    };

/**
 * LoadShape: a closed loop of `inFlight` callers, or `rps` calls started per
 * second (open loop). Open-loop arrivals are evenly spaced by default, or a
 * Poisson process (exponential gaps, as independent users make) with
 * `arrivals: "poisson"`.
 */
export type LoadShape =
  | { readonly mode: "closed"; readonly inFlight: number }
  | {
      readonly mode: "rate";
      readonly rps: number;
      readonly maxInFlight: number;
      readonly arrivals?: "uniform" | "poisson";
    };

export interface LoadgenInit {
  readonly client: LabClientSpec;
  readonly load: LoadShape;
  /** timeoutMs is every call's deadline. */
  readonly timeoutMs: number;
  /**
   * tag is sent as `x-bench-client`, and the current phase as `x-bench-phase`,
   * so servers can count attempts per client and phase.
   */
  readonly tag: string;
  /**
   * method is the OrderService method driven (mesh clients only): GetOrder
   * (NO_SIDE_EFFECTS, the default) or CreateOrder (side effects: with the
   * mesh's default `idempotencyKeys` every call carries a key and is retried;
   * its `customer_id` is `<phase>/<call id>`, unique per logical call).
   */
  readonly method?: "GetOrder" | "CreateOrder";
  /**
   * bucketMs makes every phase also count ok and failed calls by start time
   * in buckets of this many ms (PhaseStats.buckets); default off.
   */
  readonly bucketMs?: number;
  /** probe makes one call (which must succeed) before init returns; default true. */
  readonly probe?: boolean;
}

/** LatencyStats summarises latencies in ms (nearest rank); null when there are none. */
export interface LatencyStats {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly p999: number | null;
  readonly max: number | null;
  readonly mean: number | null;
}

/**
 * PhaseStats is what became of the calls started between two `phase`
 * commands (calls are counted in the phase they started in, whenever they
 * end; `drain` returns the final figures).
 */
export interface PhaseStats {
  readonly name: string;
  readonly startAtMs: number;
  readonly endAtMs: number;
  /** started counts calls started in the phase; completed, ok and errors those of them that ended. */
  readonly started: number;
  readonly completed: number;
  readonly ok: number;
  readonly errors: number;
  /** errorsByCode counts failed calls by gRPC code name. */
  readonly errorsByCode: Readonly<Record<string, number>>;
  /**
   * breakerOpen counts calls failed by an open circuit breaker without being
   * sent (refused at their first attempt: failed fast).
   */
  readonly breakerOpen: number;
  /**
   * breakerOpenAfterAttempts counts calls whose first attempt was sent and
   * failed and whose retry the breaker (opened meanwhile) refused: not failed
   * fast, so not in breakerOpenLatency.
   */
  readonly breakerOpenAfterAttempts: number;
  readonly firstError?: string;
  /** okLatency: successful calls. */
  readonly okLatency: LatencyStats;
  /** breakerOpenLatency: calls failed fast by an open breaker (those counted in breakerOpen). */
  readonly breakerOpenLatency: LatencyStats;
  /** errorLatency: every failed call. */
  readonly errorLatency: LatencyStats;
  /** servedBy counts successful calls by the replica named in the answer. */
  readonly servedBy: Readonly<Record<string, number>>;
  /** retryEvents counts mesh retry events: retry, give-up:<reason>, budget-exhausted, hedge. */
  readonly retryEvents: Readonly<Record<string, number>>;
  /** maxInFlightSeen is the most calls outstanding at once. */
  readonly maxInFlightSeen: number;
  /** skipped counts rate-mode starts dropped because maxInFlight calls were outstanding. */
  readonly skipped: number;
  /** buckets (with LoadgenInit.bucketMs): ok and failed calls by start time, from the phase's start. */
  readonly buckets?: ReadonlyArray<{ readonly ok: number; readonly errors: number }>;
}

/** LabEvent is a mesh transport event worth a timestamp (ejections, endpoint sets, breakers). */
export interface LabEvent {
  readonly atMs: number;
  /** kind: `ejected`, `restored`, `ejection-skipped`, `endpoints`, `breaker`, `resolver:<type>`. */
  readonly kind: string;
  readonly address?: string;
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
  readonly size?: number;
  readonly from?: string;
  readonly to?: string;
  readonly reason?: string;
}

export interface LoadgenEvents {
  readonly events: readonly LabEvent[];
  /** firstOkAtMs is, per replica name, the completion time of the first successful call it served. */
  readonly firstOkAtMs: Readonly<Record<string, number>>;
}

/** FirstOkAfter asks for the first successful call completed at or after `atMs`. */
export interface FirstOkAfter {
  readonly atMs: number;
  /** waitMs bounds how long to wait for one; default 0 (answer now). */
  readonly waitMs?: number;
}

export interface FirstOkAfterResult {
  /** okAtMs is that call's completion time, or null if none came within waitMs. */
  readonly okAtMs: number | null;
}

/** nowMs is the current epoch time in ms with sub-ms precision, comparable across processes. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
