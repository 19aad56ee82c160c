import type { ResolverEvent } from "../discovery/resolver.js";
import type { OutlierEvent } from "./outlier-detector.js";
import type { RemovalReason } from "./stabilize-endpoints.js";
import type { TrafficEvent } from "./traffic-events.js";

/** BalancerEvent is what the balancer reports: resolver news, ejections, set changes. */
export type BalancerEvent =
  | TrafficEvent
  | (ResolverEvent & { readonly source: "resolver" })
  | (OutlierEvent & { readonly source: "outlier"; readonly target: string })
  | {
      readonly source: "balancer";
      readonly type: "endpoints";
      readonly target: string;
      readonly added: readonly string[];
      readonly removed: readonly string[];
      readonly size: number;
    }
  | {
      readonly source: "balancer";
      readonly type: "removal-held";
      readonly target: string;
      /** address left the resolver's set but stays in use for up to graceMs. */
      readonly address: string;
      readonly graceMs: number;
    }
  | {
      readonly source: "balancer";
      readonly type: "removal-applied";
      readonly target: string;
      readonly address: string;
      /** reason: the grace ran out (`expired`) or the endpoint stopped answering (`dead`). */
      readonly reason: RemovalReason;
    }
  | {
      readonly source: "balancer";
      readonly type: "removal-cancelled";
      readonly target: string;
      /** address came back to the resolver's set while its removal was held. */
      readonly address: string;
    };
