import { Code, ConnectError } from "@connectrpc/connect";
import type { Endpoint } from "../discovery/endpoint.js";
import { EMPTY_PICKER, isAvoided, type Picker, type PickInfo } from "./picker.js";
import {
  chooseGroup,
  REST_GROUP,
  type ResolvedTrafficPolicy,
  type ResolvedZoneAware,
  subsetOf,
} from "./traffic-policy.js";
import { countZones, decideZoneRouting, type ZoneDecision } from "./zone-aware.js";

/**
 * TrafficNote is what a traffic picker build found, for events: a subset with
 * no ready endpoint and where its calls go instead, or a group's zone
 * decision.
 */
export type TrafficNote =
  | {
      readonly kind: "subset";
      readonly subset: string;
      readonly ready: number;
      /** fallback is where the subset's calls go while it has no ready endpoint. */
      readonly fallback: "none" | "rest" | "any" | "fail";
    }
  | {
      readonly kind: "zone";
      readonly group: string;
      readonly decision: ZoneDecision;
    };

/** TrafficPickerInput is everything a traffic picker is built from. */
export interface TrafficPickerInput {
  readonly target: string;
  readonly policy: ResolvedTrafficPolicy;
  /** ready are the endpoints calls may go to (ejected ones left out). */
  readonly ready: readonly Endpoint[];
  /** all are every endpoint of the target, ready or not (zone shares count them). */
  readonly all: readonly Endpoint[];
  /** build makes the load-balancing picker over a group's endpoints. */
  readonly build: (endpoints: readonly Endpoint[]) => Picker;
  /** random in [0, 1) for the subset and zone draws. */
  readonly random: () => number;
}

interface Part {
  readonly endpoints: readonly Endpoint[];
  readonly picker: Picker;
}

interface ZonePlan {
  readonly decision: ZoneDecision;
  readonly local: Part | undefined;
  /** others with cumulative probabilities, in [localShare, 1). */
  readonly others: readonly { readonly until: number; readonly part: Part }[];
}

interface Group {
  readonly whole: Part;
  readonly zones: ZonePlan | undefined;
}

type Route = Group | { readonly fail: string };

/**
 * createTrafficPicker builds an immutable picker that filters the ready
 * endpoints by the policy before the load-balancing picker chooses: a header
 * route or the percent draw names a subset; a subset with no ready endpoint
 * falls back to the rest, then to any ready endpoint (or fails the call with
 * UNAVAILABLE when it says `onEmpty: "fail"`); zone-aware routing then draws
 * the zone. One load-balancing picker is built per group and per zone, over
 * the shared load state, so EWMA and pending counts stay per endpoint. When
 * every endpoint of the chosen zone is in the attempt's `avoid` list the
 * attempt may use any zone of its group. `notes` says what the build found.
 */
export function createTrafficPicker(input: TrafficPickerInput): {
  picker: Picker;
  notes: readonly TrafficNote[];
} {
  const { policy, random } = input;
  const notes: TrafficNote[] = [];
  if (input.ready.length === 0) return { picker: EMPTY_PICKER, notes };
  const readyBy = groupBy(policy, input.ready);
  const allBy = groupBy(policy, input.all);
  const buildGroup = (name: string, ready: readonly Endpoint[]): Group => {
    const whole = part(ready, input.build);
    const zone = policy.zoneAware;
    if (zone === undefined) return { whole, zones: undefined };
    const zones = planZones(zone, allBy.get(name) ?? ready, ready, input.build);
    notes.push({ kind: "zone", group: name, decision: zones.decision });
    return { whole, zones };
  };
  const restReady = readyBy.get(REST_GROUP) ?? [];
  // "any" (every ready endpoint) is built only when some group falls back to it.
  let anyGroup: Group | undefined;
  const any = (): Group => {
    anyGroup ??= buildGroup("any", input.ready);
    return anyGroup;
  };
  const restGroup = restReady.length > 0 ? buildGroup(REST_GROUP, restReady) : any();
  const routes = new Map<string, Route>([[REST_GROUP, restGroup]]);
  for (const s of policy.subsets) {
    const ready = readyBy.get(s.name) ?? [];
    if (ready.length > 0) {
      routes.set(s.name, buildGroup(s.name, ready));
      notes.push({ kind: "subset", subset: s.name, ready: ready.length, fallback: "none" });
    } else if (s.onEmpty === "fail") {
      routes.set(s.name, {
        fail: `subset ${JSON.stringify(s.name)} of target ${JSON.stringify(input.target)} has no ready endpoint`,
      });
      notes.push({ kind: "subset", subset: s.name, ready: 0, fallback: "fail" });
    } else {
      routes.set(s.name, restGroup);
      notes.push({
        kind: "subset",
        subset: s.name,
        ready: 0,
        fallback: restGroup === anyGroup ? "any" : "rest",
      });
    }
  }
  const picker: Picker = Object.freeze({
    pick(info?: PickInfo) {
      const route = routes.get(chooseGroup(policy, info?.header, random)) ?? restGroup;
      if ("fail" in route) throw new ConnectError(route.fail, Code.Unavailable);
      let chosen = route.whole;
      const zones = route.zones;
      if (zones !== undefined && zones.decision.mode !== "off") {
        const mode = zones.decision.mode;
        const r = mode === "local" ? 0 : random();
        chosen =
          zones.local !== undefined && r < zones.decision.localShare
            ? zones.local
            : (zones.others.find((o) => r < o.until)?.part ?? zones.others.at(-1)?.part ?? chosen);
        if (chosen !== route.whole && allAvoided(chosen.endpoints, info)) chosen = route.whole;
      }
      return chosen.picker.pick(info);
    },
  });
  return { picker, notes };
}

function part(endpoints: readonly Endpoint[], build: (e: readonly Endpoint[]) => Picker): Part {
  return Object.freeze({ endpoints, picker: build(endpoints) });
}

function groupBy(policy: ResolvedTrafficPolicy, endpoints: readonly Endpoint[]) {
  const groups = new Map<string, Endpoint[]>();
  for (const e of endpoints) {
    const name = subsetOf(policy, e);
    const list = groups.get(name);
    if (list === undefined) groups.set(name, [e]);
    else list.push(e);
  }
  return groups;
}

function planZones(
  zone: ResolvedZoneAware,
  all: readonly Endpoint[],
  ready: readonly Endpoint[],
  build: (e: readonly Endpoint[]) => Picker,
): ZonePlan {
  const decision = decideZoneRouting({
    zone: zone.zone,
    total: countZones(all, zone.label),
    healthy: countZones(ready, zone.label),
    clientShares: zone.clientShares,
    minEndpoints: zone.minEndpoints,
  });
  const inZone = (z: string) => ready.filter((e) => (e.metadata[zone.label] ?? "") === z);
  const localEndpoints = decision.localShare > 0 ? inZone(zone.zone) : [];
  let until = decision.localShare;
  const others = decision.others.map((o) => {
    until += o.share;
    return Object.freeze({ until, part: part(inZone(o.zone), build) });
  });
  return Object.freeze({
    decision,
    local: localEndpoints.length > 0 ? part(localEndpoints, build) : undefined,
    others: Object.freeze(others),
  });
}

function allAvoided(endpoints: readonly Endpoint[], info: PickInfo | undefined): boolean {
  if (info?.avoid === undefined || info.avoid.length === 0) return false;
  return endpoints.every((e) => isAvoided(info, e.address));
}
