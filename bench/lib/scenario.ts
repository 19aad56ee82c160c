import type { BenchConfig } from "./protocol.js";
import type { RatioRow } from "./report.js";
import type { ResultRow } from "./runner.js";

/** SuiteGoal is a target a suite reports (never asserts), e.g. a CPU ratio. */
export interface SuiteGoal {
  readonly goal: string;
  readonly target: string;
  readonly measured: number | null;
  /** goal_met is null when the rows it needs were not measured (e.g. `--only`). */
  readonly goal_met: boolean | null;
}

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
  /** goals derive the suite's reported targets from its results and ratios. */
  readonly goals?: (results: readonly ResultRow[], ratios: readonly RatioRow[]) => SuiteGoal[];
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
