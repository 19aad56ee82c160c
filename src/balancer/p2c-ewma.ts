import { Code } from "@connectrpc/connect";
import { type Clock, systemClock } from "../clock.js";
import type { Endpoint } from "../discovery/endpoint.js";
import type { EndpointLoad, EndpointLoads } from "./endpoint-load.js";
import { EMPTY_PICKER, isAvoided, type Picker, type PickInfo, type PickResult } from "./picker.js";
import { NO_SLOW_START, type SlowStart } from "./slow-start.js";

/** P2cEwmaOptions configures createP2cEwmaPicker. */
export interface P2cEwmaOptions {
  /**
   * loads holds the state of every ready endpoint, keyed by address (build it
   * with syncEndpointLoads). A missing entry is a RangeError at build time.
   */
  readonly loads: EndpointLoads;
  /** clock times `done` for the EWMA and ages endpoints for slow start (default systemClock). */
  readonly clock?: Clock;
  /** random returns a number in [0, 1) (default Math.random); seed it in tests. */
  readonly random?: () => number;
  /** slowStart ramps new endpoints' weights (default off). */
  readonly slowStart?: SlowStart;
  /**
   * extraLoad counts calls an endpoint recently shed as still pending
   * (LoadPenalty.extraLoad): the cost becomes `rtt * (pending + 1 + extra)`;
   * default none.
   */
  readonly extraLoad?: (address: string, now: number) => number;
}

interface Candidate {
  readonly endpoint: Endpoint;
  readonly load: EndpointLoad;
}

/**
 * createP2cEwmaPicker is linkerd's balancer: draw two distinct ready
 * endpoints at random and pick the one with the lower
 * `peakEwmaCost / (weight * slowStartFactor)`. Two random choices avoid both
 * the herd of "everyone picks the least loaded" and the blindness of pure
 * random. A call is pending from pick to `done`, cancelled calls included;
 * `done` feeds the latency to the EWMA except for CANCELED calls, whose
 * latency says when the client gave up, not how fast the server is. With one
 * ready endpoint it is always picked; with none, pick returns undefined. An
 * attempt's avoided endpoints are left out of the draw while another
 * endpoint is ready (the filtered list is built only for such attempts, so
 * first attempts allocate nothing).
 */
export function createP2cEwmaPicker(ready: readonly Endpoint[], options: P2cEwmaOptions): Picker {
  const n = ready.length;
  if (n === 0) return EMPTY_PICKER;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const slowStart = options.slowStart ?? NO_SLOW_START;
  const extraLoad = options.extraLoad;
  const candidates: readonly Candidate[] = Object.freeze(
    ready.map((endpoint) => {
      const load = options.loads.get(endpoint.address);
      if (load === undefined) {
        throw new RangeError(`endpoint ${endpoint.address} has no load state`);
      }
      if (!(endpoint.weight > 0) || !Number.isFinite(endpoint.weight)) {
        throw new RangeError(`endpoint ${endpoint.address} weight ${endpoint.weight} must be > 0`);
      }
      return Object.freeze({ endpoint, load });
    }),
  );

  const score = (c: Candidate, now: number): number =>
    (extraLoad === undefined
      ? c.load.ewma.cost(now)
      : c.load.ewma.rttMs(now) * (c.load.ewma.pending + 1 + extraLoad(c.endpoint.address, now))) /
    (c.endpoint.weight * slowStart.factor(now - c.load.readySince));

  const index = (bound: number): number => {
    const i = Math.floor(random() * bound);
    return i < 0 ? 0 : i >= bound ? bound - 1 : i;
  };

  const take = (c: Candidate): PickResult => {
    const { ewma } = c.load;
    ewma.start();
    let ended = false;
    return {
      endpoint: c.endpoint,
      done(info) {
        if (ended) return;
        ended = true;
        ewma.end();
        if (info.code !== Code.Canceled && info.latencySample !== false) {
          ewma.observe(info.latencyMs, clock.now());
        }
      },
    };
  };

  const draw = (from: readonly Candidate[]): PickResult => {
    const m = from.length;
    if (m === 1) return take(from[0]!);
    const i = index(m);
    // Draw the second from the other m - 1 so the two are always distinct.
    let j = index(m - 1);
    if (j >= i) j++;
    const a = from[i]!;
    const b = from[j]!;
    const now = clock.now();
    return take(score(a, now) <= score(b, now) ? a : b);
  };

  return Object.freeze({
    pick(info?: PickInfo) {
      if (info?.avoid === undefined || info.avoid.length === 0) return draw(candidates);
      const allowed = candidates.filter((c) => !isAvoided(info, c.endpoint.address));
      return draw(allowed.length === 0 ? candidates : allowed);
    },
  });
}
