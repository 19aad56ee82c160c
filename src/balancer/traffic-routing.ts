import type { Endpoint } from "../discovery/endpoint.js";
import type { Picker } from "./picker.js";
import type { TrafficEvent } from "./traffic-events.js";
import { createTrafficPicker, type TrafficNote } from "./traffic-picker.js";
import {
  type ResolvedTrafficPolicy,
  resolveTrafficPolicy,
  type TrafficPolicy,
} from "./traffic-policy.js";

/** TrafficRoutingOptions configures createTrafficRouting. */
export interface TrafficRoutingOptions {
  readonly target: string;
  /** policy to start with; undefined routes every call by the balancer alone. */
  readonly policy?: TrafficPolicy | undefined;
  /** random in [0, 1) for subset and zone draws; default Math.random. */
  readonly random?: (() => number) | undefined;
  readonly emit: (event: TrafficEvent) => void;
}

/**
 * TrafficRouting holds a balancer's current traffic policy (an immutable
 * snapshot, swapped whole) and wraps each picker the balancer builds in it.
 */
export interface TrafficRouting {
  /** policy is the snapshot in force (validated, frozen), or undefined. */
  policy(): ResolvedTrafficPolicy | undefined;
  /**
   * set validates and swaps the policy (TypeError/RangeError naming the bad
   * value, leaving the old one in force); the caller rebuilds its picker.
   */
  set(policy: TrafficPolicy | undefined): void;
  /** wrap builds the picker over `ready` (`all`: every endpoint, for zone shares). */
  wrap(
    ready: readonly Endpoint[],
    all: readonly Endpoint[],
    build: (endpoints: readonly Endpoint[]) => Picker,
  ): Picker;
}

/**
 * createTrafficRouting returns the holder; with no policy `wrap` is the
 * plain picker, so a transport without traffic policy pays nothing. Events
 * are emitted only when a subset's fallback or a group's zone mode changes
 * between builds.
 */
export function createTrafficRouting(options: TrafficRoutingOptions): TrafficRouting {
  let current = options.policy === undefined ? undefined : resolveTrafficPolicy(options.policy);
  const random = options.random ?? Math.random;
  let seen = new Map<string, string>();
  const target = options.target;

  function report(notes: readonly TrafficNote[]): void {
    const next = new Map<string, string>();
    for (const note of notes) {
      if (note.kind === "subset") {
        const key = `subset:${note.subset}`;
        next.set(key, note.fallback);
        const before = seen.get(key);
        if (before === note.fallback) continue;
        if (note.fallback !== "none") {
          options.emit({
            source: "traffic",
            type: "subset-fallback",
            target,
            subset: note.subset,
            to: note.fallback,
          });
        } else if (before !== undefined) {
          options.emit({
            source: "traffic",
            type: "subset-restored",
            target,
            subset: note.subset,
            ready: note.ready,
          });
        }
      } else {
        const key = `zone:${note.group}`;
        const localPercent = Math.round(note.decision.localShare * 1000) / 10;
        const state = `${note.decision.mode}:${localPercent}`;
        next.set(key, state);
        if (seen.get(key) === state) continue;
        options.emit({
          source: "traffic",
          type: "zone-routing",
          target,
          group: note.group,
          zone: current?.zoneAware?.zone ?? "",
          mode: note.decision.mode,
          localPercent,
          reason: note.decision.reason,
        });
      }
    }
    seen = next;
  }

  return {
    policy: () => current,
    set(policy) {
      current = policy === undefined ? undefined : resolveTrafficPolicy(policy);
      seen = new Map();
      options.emit({
        source: "traffic",
        type: "policy-changed",
        target,
        subsets: (current?.subsets ?? []).map((s) => `${s.name}=${s.percent}%`),
        routes: current?.routes.length ?? 0,
        zone: current?.zoneAware?.zone,
      });
    },
    wrap(ready, all, build) {
      if (current === undefined) return build(ready);
      const { picker, notes } = createTrafficPicker({
        target,
        policy: current,
        ready,
        all,
        build,
        random,
      });
      report(notes);
      return picker;
    },
  };
}
