import type { Clock } from "../clock.js";
import type { Endpoint } from "../discovery/endpoint.js";
import type { EndpointLoads } from "./endpoint-load.js";
import { createP2cEwmaPicker } from "./p2c-ewma.js";
import { createPickFirstPicker } from "./pick-first.js";
import type { Picker } from "./picker.js";
import { createRoundRobinPicker } from "./round-robin.js";
import type { SlowStart } from "./slow-start.js";

/** PickerContext is the balancer state a picker factory may draw on. */
export interface PickerContext {
  /** loads holds one load per ready endpoint (pending calls, peak EWMA). */
  readonly loads: EndpointLoads;
  readonly clock: Clock;
  readonly slowStart: SlowStart;
  /** random in [0, 1); undefined means Math.random. */
  readonly random: (() => number) | undefined;
  /** extraLoad is the load penalty's count of recently shed calls (p2c-ewma); undefined means none. */
  readonly extraLoad?: ((address: string, now: number) => number) | undefined;
}

/** PickerFactory builds an immutable picker over the ready endpoints. */
export type PickerFactory = (ready: readonly Endpoint[], context: PickerContext) => Picker;

/**
 * PICKER_FACTORIES maps each load-balancing policy name to its picker, as
 * grpc-go's balancer registry does: the balancer looks the policy up here,
 * and a new policy is one entry, not a new branch in the balancer.
 */
export const PICKER_FACTORIES = Object.freeze({
  "p2c-ewma": (ready, c) =>
    createP2cEwmaPicker(ready, {
      loads: c.loads,
      clock: c.clock,
      slowStart: c.slowStart,
      ...(c.random === undefined ? {} : { random: c.random }),
      ...(c.extraLoad === undefined ? {} : { extraLoad: c.extraLoad }),
    }),
  "round-robin": (ready, c) =>
    createRoundRobinPicker(ready, c.random === undefined ? {} : { random: c.random }),
  "pick-first": (ready) => createPickFirstPicker(ready),
} satisfies Record<string, PickerFactory>);

/** LoadBalancingPolicy names a picker: `p2c-ewma` (default), `round-robin`, `pick-first`. */
export type LoadBalancingPolicy = keyof typeof PICKER_FACTORIES;
