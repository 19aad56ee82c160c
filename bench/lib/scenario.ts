import type { BenchConfig } from "./protocol.js";

/** Timing says how long each phase of a run lasts and how often it repeats. */
export interface Timing {
  /** warmupMs runs load before the measured window (not recorded). */
  readonly warmupMs: number;
  /** durationMs is the measured window of one repetition. */
  readonly durationMs: number;
  /** reps is how many times each configuration is measured, round-robin. */
  readonly reps: number;
}

/**
 * Scenario is a benchmark suite: a named list of configurations that the
 * runner measures round-robin. New suites (slow replica, retries,
 * idempotency) are new modules in bench/scenarios/ registered in
 * bench/scenarios/index.ts.
 */
export interface Scenario {
  readonly name: string;
  readonly title: string;
  /** notes are printed under the results table and stored in the JSON. */
  readonly notes: readonly string[];
  /** timing overrides the runner's defaults for full and quick runs. */
  readonly timing?: { readonly full?: Partial<Timing>; readonly quick?: Partial<Timing> };
  configs(opts: { readonly quick: boolean }): readonly BenchConfig[];
  /**
   * reference is the label of the row every other row of the same payload
   * size is compared with in the report's ratio table (e.g. "grpc-js → grpc-js"),
   * or a function giving it per row label.
   */
  readonly reference?: string | ((config: string) => string);
  /** unit names what one counted call is in the tables; default a unary call. */
  readonly unit?: ReportUnit;
}

/** ReportUnit names a suite's unit of work, e.g. `{ rate: "msg/s", per: "msg" }`. */
export interface ReportUnit {
  /** rate heads the throughput column, e.g. "req/s". */
  readonly rate: string;
  /** per ends the CPU columns' heading, e.g. "call" in "CPU µs/call". */
  readonly per: string;
}
