import type { ResolverEvent } from "../discovery/resolver.js";
import type { OutlierEvent } from "./outlier-detector.js";

/** BalancerEvent is what the balancer reports: resolver news, ejections, set changes. */
export type BalancerEvent =
  | (ResolverEvent & { readonly source: "resolver" })
  | (OutlierEvent & { readonly source: "outlier"; readonly target: string })
  | {
      readonly source: "balancer";
      readonly type: "endpoints";
      readonly target: string;
      readonly added: readonly string[];
      readonly removed: readonly string[];
      readonly size: number;
    };
