import type { Endpoint } from "../discovery/endpoint.js";
import { EMPTY_PICKER, NOOP_DONE, type Picker, type PickResult } from "./picker.js";

/**
 * createPickFirstPicker always picks the first ready endpoint, like grpc-go's
 * pick_first: all traffic on one connection, failing over in list order when
 * the first endpoint leaves the ready list. It keeps no per-call state.
 */
export function createPickFirstPicker(ready: readonly Endpoint[]): Picker {
  const first = ready[0];
  if (first === undefined) return EMPTY_PICKER;
  // One frozen result serves every call: done is a no-op, nothing varies.
  const result: PickResult = Object.freeze({ endpoint: first, done: NOOP_DONE });
  return Object.freeze({ pick: () => result });
}
