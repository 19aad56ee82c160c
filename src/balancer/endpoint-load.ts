import type { Endpoint } from "../discovery/endpoint.js";
import { createPeakEwma, type PeakEwma, type PeakEwmaOptions } from "./peak-ewma.js";

/**
 * EndpointLoad is the mutable per-endpoint state a load-aware picker reads:
 * the peak-EWMA estimator and when the endpoint became ready (for slow start).
 * It outlives pickers so pending counts survive a picker swap.
 */
export interface EndpointLoad {
  readonly ewma: PeakEwma;
  /** readySince is the clock time the endpoint (re)entered the ready list. */
  readonly readySince: number;
}

/** EndpointLoads maps an endpoint address to its load state. */
export type EndpointLoads = ReadonlyMap<string, EndpointLoad>;

/**
 * syncEndpointLoads returns a new map with one load per ready endpoint: the
 * existing state for addresses already known (keyed by address, since a new
 * snapshot may carry new Endpoint objects for the same replica) and fresh
 * state, ready and seeded since `now`, for new ones. Addresses no longer ready are
 * dropped, so an endpoint coming back (say, after ejection) slow-starts again.
 */
export function syncEndpointLoads(
  previous: EndpointLoads,
  ready: readonly Endpoint[],
  now: number,
  ewmaOptions: PeakEwmaOptions = {},
): EndpointLoads {
  const next = new Map<string, EndpointLoad>();
  for (const endpoint of ready) {
    const known = previous.get(endpoint.address);
    next.set(
      endpoint.address,
      known ??
        Object.freeze({ ewma: createPeakEwma({ ...ewmaOptions, seededAt: now }), readySince: now }),
    );
  }
  return next;
}
