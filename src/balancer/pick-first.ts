import type { Endpoint } from "../discovery/endpoint.js";
import {
  EMPTY_PICKER,
  isAvoided,
  NOOP_DONE,
  type Picker,
  type PickInfo,
  type PickResult,
} from "./picker.js";

/**
 * createPickFirstPicker always picks the first ready endpoint, like grpc-go's
 * pick_first: all traffic on one connection, failing over in list order when
 * the first endpoint leaves the ready list. An attempt that avoids the first
 * goes to the first ready endpoint it does not avoid. It keeps no per-call state.
 */
export function createPickFirstPicker(ready: readonly Endpoint[]): Picker {
  const first = ready[0];
  if (first === undefined) return EMPTY_PICKER;
  // One frozen result serves every call: done is a no-op, nothing varies.
  const results: readonly PickResult[] = Object.freeze(
    ready.map((endpoint) => Object.freeze({ endpoint, done: NOOP_DONE })),
  );
  const firstResult = results[0] as PickResult;
  return Object.freeze({
    pick(info?: PickInfo) {
      if (!isAvoided(info, first.address)) return firstResult;
      return results.find((r) => !isAvoided(info, r.endpoint.address)) ?? firstResult;
    },
  });
}
