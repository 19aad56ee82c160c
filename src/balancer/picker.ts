import type { CallOutcome } from "../breaker/call-outcome.js";
import type { Endpoint } from "../discovery/endpoint.js";

/**
 * PickInfo describes the attempt being routed, as grpc-go's PickInfo does.
 * Every picker honours it itself: only the picker knows how to draw again
 * without skewing its own load accounting.
 */
export interface PickInfo {
  /**
   * avoid lists addresses the attempt should not go to (endpoints that failed
   * earlier attempts of the call, hedges in flight). A picker passes over
   * them while another ready endpoint is left, and picks among them when none
   * is: a second try at a failed endpoint beats no try.
   */
  readonly avoid?: readonly string[];
  /**
   * header is the attempt's request headers, for header-based routes of a
   * TrafficPolicy; pickers that do not route by header ignore it.
   */
  readonly header?: HeaderLookup;
}

/** HeaderLookup is the part of `Headers` a picker may read. */
export interface HeaderLookup {
  get(name: string): string | null;
}

/** isAvoided says whether `info` asks to avoid `address`. */
export function isAvoided(info: PickInfo | undefined, address: string): boolean {
  const avoid = info?.avoid;
  return avoid !== undefined && avoid.length > 0 && avoid.includes(address);
}

/**
 * DoneInfo is the outcome reported to PickResult.done once the call is over.
 * Cancelled calls report it too (ok false, code CANCELED): load accounting
 * must count every call from pick to end.
 */
export type DoneInfo = CallOutcome;

/**
 * PickResult is the endpoint chosen for one call plus its feedback hook, in
 * grpc-go's style. `done` must be called exactly once; extra calls are
 * ignored by the built-in pickers. Wrappers chain `done` (see chainDone),
 * never replace it.
 */
export interface PickResult {
  readonly endpoint: Endpoint;
  done(info: DoneInfo): void;
}

/**
 * Picker chooses an endpoint for each call. It is an immutable snapshot built
 * from the ready endpoints and swapped whole when they change; `pick` is
 * synchronous, cheap and never blocks. It returns undefined when there is no
 * endpoint to pick (the caller waits for the next picker or fails the call).
 */
export interface Picker {
  pick(info?: PickInfo): PickResult | undefined;
}

/** NOOP_DONE is the done hook of pickers that keep no per-call state. */
export const NOOP_DONE: (info: DoneInfo) => void = () => {};

/** EMPTY_PICKER picks nothing; it stands in while no endpoint is ready. */
export const EMPTY_PICKER: Picker = Object.freeze({ pick: () => undefined });

/**
 * chainDone returns a result for the same endpoint whose `done` runs the
 * original hook, then `next`. Interceptors use it to observe outcomes (outlier
 * detection, metrics) without cutting the picker's own accounting out.
 */
export function chainDone(result: PickResult, next: (info: DoneInfo) => void): PickResult {
  return Object.freeze({
    endpoint: result.endpoint,
    done(info: DoneInfo) {
      try {
        result.done(info);
      } finally {
        next(info);
      }
    },
  });
}
