import type { ZoneRoutingMode } from "./zone-aware.js";

/**
 * TrafficEvent is what traffic policy reports (source `traffic`): a policy
 * set at run time, a subset whose calls fall back because none of its
 * endpoints is ready (and its return), and changes of a group's zone-aware
 * routing mode. They are emitted when a picker is built (endpoint or
 * ejection changes), never per call.
 */
export type TrafficEvent =
  | {
      readonly source: "traffic";
      readonly type: "policy-changed";
      readonly target: string;
      /** subsets names the new policy's subsets with their percents. */
      readonly subsets: readonly string[];
      readonly routes: number;
      /** zone is the client zone of zone-aware routing, if on. */
      readonly zone: string | undefined;
    }
  | {
      readonly source: "traffic";
      readonly type: "subset-fallback";
      readonly target: string;
      readonly subset: string;
      /**
       * to is where the subset's calls go while none of its endpoints is
       * ready: the `rest`, `any` ready endpoint (the rest has none either), or
       * `fail` (UNAVAILABLE, the subset says `onEmpty: "fail"`).
       */
      readonly to: "rest" | "any" | "fail";
    }
  | {
      readonly source: "traffic";
      readonly type: "subset-restored";
      readonly target: string;
      readonly subset: string;
      /** ready counts the subset's ready endpoints again. */
      readonly ready: number;
    }
  | {
      readonly source: "traffic";
      readonly type: "zone-routing";
      readonly target: string;
      /** group is the subset (or `rest`, `any`) whose zone decision changed. */
      readonly group: string;
      readonly zone: string;
      readonly mode: ZoneRoutingMode;
      /** localPercent of the group's calls stay in the client's zone (0..100). */
      readonly localPercent: number;
      readonly reason: string;
    };
