import type { Endpoint } from "../discovery/endpoint.js";

/** ZoneAwareOptions turns on zone-aware routing (Envoy's rule) for a transport. */
export interface ZoneAwareOptions {
  /** zone is the client's own zone, compared with each endpoint's zone label. */
  readonly zone: string;
  /** label is the endpoint metadata key holding its zone; default `zone`. */
  readonly label?: string;
  /**
   * clientShares is how the calling fleet's load is spread over zones (Envoy's
   * originating cluster), e.g. `{ a: 2, b: 1 }`; values are relative and are
   * normalised. Default: the upstream fleet's own spread (all its endpoints,
   * healthy or not, per zone), i.e. clients deployed like the servers.
   */
  readonly clientShares?: Readonly<Record<string, number>>;
  /**
   * minEndpoints turns zone-aware routing off while the target has fewer
   * endpoints (Envoy's `min_cluster_size`, same default 6): in a small fleet
   * one failure moves a large share of the load, and plain balancing over
   * every endpoint spreads it better.
   */
  readonly minEndpoints?: number;
}

/** ZONE_AWARE_DEFAULTS are the defaults documented on ZoneAwareOptions. */
export const ZONE_AWARE_DEFAULTS = Object.freeze({ label: "zone", minEndpoints: 6 });

/**
 * ZoneRoutingMode names the outcome of the zone rule:
 * `local` all calls stay in the client's zone; `spill` a share leaves it
 * because its healthy endpoints are too few for its load; `failover` the
 * zone has no healthy endpoint, so every call goes elsewhere; `off` the rule
 * does not apply (fleet smaller than minEndpoints, or no endpoint is in the
 * client's zone at all) and calls spread over every zone.
 */
export type ZoneRoutingMode = "local" | "spill" | "failover" | "off";

/** ZoneShare is the probability that a call goes to one zone. */
export interface ZoneShare {
  readonly zone: string;
  readonly share: number;
}

/** ZoneDecision is the pure result of the zone rule for one endpoint snapshot. */
export interface ZoneDecision {
  readonly mode: ZoneRoutingMode;
  /** localShare is the probability a call stays in the client's zone (0..1). */
  readonly localShare: number;
  /**
   * others spreads the rest (1 - localShare) over the other zones, each share
   * the probability of that zone, summing to 1 - localShare. Empty in `local`
   * and `off` modes (`off` picks from every endpoint at once).
   */
  readonly others: readonly ZoneShare[];
  /** reason says why, for the event and log line. */
  readonly reason: string;
}

/** ZoneInput is what decideZoneRouting needs: zone counts, not endpoints. */
export interface ZoneInput {
  readonly zone: string;
  /** total counts every endpoint of the target per zone (healthy or not). */
  readonly total: ReadonlyMap<string, number>;
  /** healthy counts the ready (not ejected) endpoints per zone. */
  readonly healthy: ReadonlyMap<string, number>;
  /** clientShares, relative; undefined means `total`. */
  readonly clientShares?: Readonly<Record<string, number>> | undefined;
  readonly minEndpoints: number;
}

const sum = (m: Iterable<number>): number => {
  let s = 0;
  for (const v of m) s += v;
  return s;
};

/**
 * decideZoneRouting applies Envoy's zone-aware routing rule. With
 * `upstream[z]` the zone's share of the healthy endpoints and `local[z]` its
 * share of the client load: when `upstream[own] >= local[own]` the own zone
 * can carry its load and every call stays (`local`); otherwise
 * `upstream[own] / local[own]` of the calls stay and the rest spill to the
 * other zones in proportion to their residual capacity
 * `max(0, upstream[z] - local[z])` (`spill`), so that every endpoint still
 * gets about the same number of calls. A zone with no healthy endpoint sends
 * every call to the others in proportion to their healthy endpoints
 * (`failover`).
 */
export function decideZoneRouting(input: ZoneInput): ZoneDecision {
  const totalCount = sum(input.total.values());
  const healthyCount = sum(input.healthy.values());
  const own = input.zone;
  if (totalCount < input.minEndpoints) {
    return off(`${totalCount} endpoints are fewer than minEndpoints ${input.minEndpoints}`);
  }
  if ((input.total.get(own) ?? 0) === 0) {
    return off(`no endpoint is in zone ${JSON.stringify(own)}`);
  }
  if (healthyCount === 0) return off("no endpoint is healthy");
  const ownHealthy = input.healthy.get(own) ?? 0;
  if (ownHealthy === 0) {
    const others: ZoneShare[] = [];
    for (const [zone, n] of input.healthy) {
      if (zone !== own && n > 0) others.push({ zone, share: n / healthyCount });
    }
    return freeze("failover", 0, others, `zone ${JSON.stringify(own)} has no healthy endpoint`);
  }
  const shares = input.clientShares ?? Object.fromEntries(input.total);
  const clientTotal = sum(Object.values(shares));
  const localPct = (zone: string) => (clientTotal > 0 ? (shares[zone] ?? 0) / clientTotal : 0);
  const upstreamPct = (zone: string) => (input.healthy.get(zone) ?? 0) / healthyCount;
  const ownLocal = localPct(own);
  const ownUpstream = upstreamPct(own);
  if (ownUpstream >= ownLocal) {
    return freeze("local", 1, [], `zone ${JSON.stringify(own)} can carry its load`);
  }
  const stay = ownUpstream / ownLocal;
  const residual: ZoneShare[] = [];
  for (const [zone, n] of input.healthy) {
    if (zone === own || n === 0) continue;
    const r = upstreamPct(zone) - localPct(zone);
    if (r > 0) residual.push({ zone, share: r });
  }
  const residualTotal = sum(residual.map((r) => r.share));
  // Both spreads sum to 1, so the other zones' residuals sum to at least
  // local[own] - upstream[own] > 0: residualTotal is never 0 here.
  const others = residual.map((r) => ({
    zone: r.zone,
    share: ((1 - stay) * r.share) / residualTotal,
  }));
  return freeze(
    "spill",
    stay,
    others,
    `zone ${JSON.stringify(own)} holds ${pct(ownUpstream)} of the healthy endpoints for ${pct(ownLocal)} of the load`,
  );
}

/** countZones counts endpoints per zone label (a missing label is zone ""). */
export function countZones(endpoints: readonly Endpoint[], label: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of endpoints) {
    const zone = e.metadata[label] ?? "";
    counts.set(zone, (counts.get(zone) ?? 0) + 1);
  }
  return counts;
}

/** validateZoneAware checks ZoneAwareOptions, throwing TypeError/RangeError naming the bad value. */
export function validateZoneAware(options: ZoneAwareOptions): void {
  if (typeof options.zone !== "string" || options.zone === "") {
    throw new TypeError(`zone ${JSON.stringify(options.zone)} must be a non-empty string`);
  }
  if (options.label !== undefined && (typeof options.label !== "string" || options.label === "")) {
    throw new TypeError(`zone label ${JSON.stringify(options.label)} must be a non-empty string`);
  }
  const min = options.minEndpoints;
  if (min !== undefined && !(Number.isInteger(min) && min >= 0)) {
    throw new RangeError(`minEndpoints ${min} must be an integer >= 0`);
  }
  if (options.clientShares !== undefined) {
    let total = 0;
    for (const [zone, share] of Object.entries(options.clientShares)) {
      if (!(Number.isFinite(share) && share >= 0)) {
        throw new RangeError(`clientShares[${JSON.stringify(zone)}] ${share} must be >= 0`);
      }
      total += share;
    }
    if (!((options.clientShares[options.zone] ?? 0) > 0) || total <= 0) {
      throw new RangeError(
        `clientShares must give zone ${JSON.stringify(options.zone)} a share > 0`,
      );
    }
  }
}

function off(reason: string): ZoneDecision {
  return freeze("off", 0, [], reason);
}

function freeze(
  mode: ZoneRoutingMode,
  localShare: number,
  others: readonly ZoneShare[],
  reason: string,
): ZoneDecision {
  return Object.freeze({
    mode,
    localShare,
    others: Object.freeze(others.map((o) => Object.freeze(o))),
    reason,
  });
}

function pct(x: number): string {
  return `${Math.round(x * 1000) / 10}%`;
}
