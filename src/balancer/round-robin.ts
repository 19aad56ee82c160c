import type { Endpoint } from "../discovery/endpoint.js";
import {
  EMPTY_PICKER,
  isAvoided,
  NOOP_DONE,
  type Picker,
  type PickInfo,
  type PickResult,
} from "./picker.js";

/** RoundRobinOptions configures createRoundRobinPicker. */
export interface RoundRobinOptions {
  /**
   * random picks the starting index (default Math.random). Starting every
   * client at index 0 would make a fleet of clients hit the same endpoint
   * right after each endpoint-set change; grpc-go starts at random too.
   */
  readonly random?: () => number;
}

/**
 * createRoundRobinPicker cycles through the ready endpoints in order from a
 * random start. Endpoint weights are ignored (use the p2c-ewma picker for
 * weights). An attempt's avoided endpoints are skipped in cycle order while
 * another is ready. The cursor is the picker's only mutable state; the
 * endpoint list is copied and frozen.
 */
export function createRoundRobinPicker(
  ready: readonly Endpoint[],
  options: RoundRobinOptions = {},
): Picker {
  const n = ready.length;
  if (n === 0) return EMPTY_PICKER;
  const random = options.random ?? Math.random;
  const results: readonly PickResult[] = Object.freeze(
    ready.map((endpoint) => Object.freeze({ endpoint, done: NOOP_DONE })),
  );
  let next = Math.min(n - 1, Math.max(0, Math.floor(random() * n)));
  return Object.freeze({
    pick(info?: PickInfo) {
      for (let tries = 0; ; tries++) {
        const result = results[next]!;
        next = next + 1 === n ? 0 : next + 1;
        // After a full turn every endpoint is avoided: take the next one anyway.
        if (tries + 1 >= n || !isAvoided(info, result.endpoint.address)) return result;
      }
    },
  });
}
