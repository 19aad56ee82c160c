import type { Endpoint } from "../discovery/endpoint.js";
import type { HeaderLookup } from "./picker.js";
import { validateZoneAware, ZONE_AWARE_DEFAULTS, type ZoneAwareOptions } from "./zone-aware.js";

/**
 * TrafficSubset names the endpoints whose registry metadata matches `match`
 * (every key equal), e.g. `{ name: "canary", match: { version: "1.5.0" },
 * percent: 10 }`. An endpoint belongs to the first subset it matches; the
 * endpoints that match none are the rest.
 */
export interface TrafficSubset {
  /** name identifies the subset in routes, events and logs. */
  readonly name: string;
  /** match lists metadata values an endpoint must all carry. */
  readonly match: Readonly<Record<string, string>>;
  /**
   * percent of the calls no header route claimed go to this subset (0..100,
   * fractions allowed); default 0 (reached through routes only). The rest
   * get 100 minus the sum of all subsets' percents.
   */
  readonly percent?: number;
  /**
   * onEmpty says what a call sent to the subset does while none of its
   * endpoints is ready: `fallback` (default) goes to the rest (or, when the
   * rest has none either, to any ready endpoint) and reports a
   * `subset-fallback` event; `fail` fails the call with UNAVAILABLE naming
   * the subset.
   */
  readonly onEmpty?: "fallback" | "fail";
}

/**
 * HeaderRoute sends a call whose request header matches to a subset, before
 * and instead of the percent split, e.g. `{ header: "x-canary", value: "1",
 * subset: "canary" }`. The first matching route wins.
 */
export interface HeaderRoute {
  /** header is the request header name (case-insensitive). */
  readonly header: string;
  /** value the header must equal exactly; omitted, any value matches. */
  readonly value?: string;
  /** subset is the name of a TrafficSubset of the same policy. */
  readonly subset: string;
}

/**
 * TrafficPolicy shapes where a transport's calls go, as filters over the
 * balancer's ready endpoints: header routes, then a percent split over
 * metadata subsets, then zone-aware routing inside the chosen group; the
 * load-balancing policy (p2c-ewma by default) picks inside what is left.
 * Outlier ejection still works per endpoint: an ejected endpoint leaves its
 * subset and zone until it returns.
 */
export interface TrafficPolicy {
  readonly subsets?: readonly TrafficSubset[];
  readonly routes?: readonly HeaderRoute[];
  /** zoneAware prefers endpoints in the client's zone (see ZoneAwareOptions). */
  readonly zoneAware?: ZoneAwareOptions;
}

/** ResolvedZoneAware is ZoneAwareOptions with defaults filled in. */
export interface ResolvedZoneAware {
  readonly zone: string;
  readonly label: string;
  readonly clientShares: Readonly<Record<string, number>> | undefined;
  readonly minEndpoints: number;
}

/** ResolvedTrafficPolicy is a validated, frozen TrafficPolicy with defaults filled in. */
export interface ResolvedTrafficPolicy {
  readonly subsets: readonly Required<TrafficSubset>[];
  readonly routes: readonly HeaderRoute[];
  /** restPercent is the share of unrouted calls that goes to the rest. */
  readonly restPercent: number;
  readonly zoneAware: ResolvedZoneAware | undefined;
}

/** REST_GROUP names the endpoints that match no subset, in events. */
export const REST_GROUP = "rest";

/**
 * resolveTrafficPolicy validates a policy and returns a frozen copy with
 * defaults, so a caller mutating its object later changes nothing. It throws
 * TypeError or RangeError naming the bad value: a duplicate or reserved
 * subset name, an empty match, a percent outside 0..100 or a total above
 * 100, a route to an unknown subset.
 */
export function resolveTrafficPolicy(policy: TrafficPolicy): ResolvedTrafficPolicy {
  if (typeof policy !== "object" || policy === null) {
    throw new TypeError(`traffic policy ${String(policy)} must be an object`);
  }
  const names = new Set<string>();
  let total = 0;
  const subsets = (policy.subsets ?? []).map((s) => {
    if (typeof s?.name !== "string" || s.name === "" || s.name === REST_GROUP) {
      throw new TypeError(
        `subset name ${JSON.stringify(s?.name)} must be a non-empty string other than "${REST_GROUP}"`,
      );
    }
    if (names.has(s.name)) throw new TypeError(`subset name ${JSON.stringify(s.name)} is repeated`);
    names.add(s.name);
    const entries = typeof s.match === "object" && s.match !== null ? Object.entries(s.match) : [];
    if (entries.length === 0 || entries.some(([, v]) => typeof v !== "string")) {
      throw new TypeError(
        `subset ${JSON.stringify(s.name)} match ${JSON.stringify(s.match)} must map metadata keys to strings`,
      );
    }
    const percent = s.percent ?? 0;
    if (!(Number.isFinite(percent) && percent >= 0 && percent <= 100)) {
      throw new RangeError(`subset ${JSON.stringify(s.name)} percent ${percent} must be in 0..100`);
    }
    const onEmpty = s.onEmpty ?? "fallback";
    if (onEmpty !== "fallback" && onEmpty !== "fail") {
      throw new TypeError(
        `subset ${JSON.stringify(s.name)} onEmpty ${JSON.stringify(onEmpty)} must be "fallback" or "fail"`,
      );
    }
    total += percent;
    return Object.freeze({
      name: s.name,
      match: Object.freeze(Object.fromEntries(entries)),
      percent,
      onEmpty,
    });
  });
  // Float sums of fractions such as 33.3 + 66.7 may land a hair above 100.
  if (total > 100 + 1e-9) {
    throw new RangeError(`subset percents sum to ${total}, more than 100`);
  }
  const routes = (policy.routes ?? []).map((r) => {
    if (typeof r?.header !== "string" || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(r.header)) {
      throw new TypeError(`route header ${JSON.stringify(r?.header)} must be a header name`);
    }
    if (r.value !== undefined && typeof r.value !== "string") {
      throw new TypeError(`route ${r.header} value ${JSON.stringify(r.value)} must be a string`);
    }
    if (!names.has(r.subset)) {
      throw new TypeError(
        `route ${r.header} names subset ${JSON.stringify(r.subset)}, which the policy does not define`,
      );
    }
    return Object.freeze(
      r.value === undefined
        ? { header: r.header.toLowerCase(), subset: r.subset }
        : { header: r.header.toLowerCase(), value: r.value, subset: r.subset },
    );
  });
  let zoneAware: ResolvedZoneAware | undefined;
  if (policy.zoneAware !== undefined) {
    validateZoneAware(policy.zoneAware);
    zoneAware = Object.freeze({
      zone: policy.zoneAware.zone,
      label: policy.zoneAware.label ?? ZONE_AWARE_DEFAULTS.label,
      clientShares:
        policy.zoneAware.clientShares === undefined
          ? undefined
          : Object.freeze({ ...policy.zoneAware.clientShares }),
      minEndpoints: policy.zoneAware.minEndpoints ?? ZONE_AWARE_DEFAULTS.minEndpoints,
    });
  }
  return Object.freeze({
    subsets: Object.freeze(subsets),
    routes: Object.freeze(routes),
    restPercent: Math.max(0, 100 - total),
    zoneAware,
  });
}

/** subsetOf returns the name of the first subset `endpoint` matches, or REST_GROUP. */
export function subsetOf(policy: ResolvedTrafficPolicy, endpoint: Endpoint): string {
  for (const s of policy.subsets) {
    let all = true;
    for (const k in s.match) {
      if (endpoint.metadata[k] !== s.match[k]) {
        all = false;
        break;
      }
    }
    if (all) return s.name;
  }
  return REST_GROUP;
}

/**
 * chooseGroup decides which group a call goes to: the subset of the first
 * header route `header` matches, else a draw of `random()` (in [0, 1)) over
 * the subsets' percents, the rest taking what is left. Pure: the same
 * inputs give the same group.
 */
export function chooseGroup(
  policy: ResolvedTrafficPolicy,
  header: HeaderLookup | undefined,
  random: () => number,
): string {
  if (header !== undefined) {
    for (const r of policy.routes) {
      const v = header.get(r.header);
      if (v !== null && (r.value === undefined || v === r.value)) return r.subset;
    }
  }
  if (policy.restPercent >= 100) return REST_GROUP;
  let at = random() * 100;
  let last: string | undefined;
  for (const s of policy.subsets) {
    if (s.percent === 0) continue;
    if (at < s.percent) return s.name;
    at -= s.percent;
    last = s.name;
  }
  // Percents summing to 100 leave no rest: a float residue stays in the last subset.
  return policy.restPercent === 0 && last !== undefined ? last : REST_GROUP;
}
