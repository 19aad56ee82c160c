import type { Criticality } from "./criticality.js";

/**
 * LimitEvent is what a concurrency limit reports: `limit-changed` when an
 * adaptive limit moves to another whole number (`key` is the method,
 * `"pkg.Service/Method"`, or `"*"` for a per-server limit), `shed` when it
 * refuses a call.
 */
export type LimitEvent =
  | {
      readonly type: "limit-changed";
      readonly key: string;
      readonly from: number;
      readonly to: number;
      /** rttMs is the short-window RTT the change was computed from. */
      readonly rttMs: number;
      readonly algorithm: string;
    }
  | {
      readonly type: "shed";
      readonly key: string;
      readonly method: string;
      readonly criticality: Criticality;
      readonly limit: number;
      readonly inFlight: number;
    };
