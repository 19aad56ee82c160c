import type { Code } from "@connectrpc/connect";

/**
 * MirrorEvent is what request mirroring reports; logging and metrics
 * subscribe (`mesh_mirror_calls_total{outcome}`). `target` is the primary's
 * target, `shadow` names the shadow (its target, when known).
 */
export type MirrorEvent =
  | {
      /** mirror-sent: a mirrored copy was started; inFlight counts it. */
      readonly type: "mirror-sent";
      readonly target: string;
      readonly shadow: string;
      readonly method: string;
      readonly inFlight: number;
    }
  | {
      /** mirror-dropped: a sampled call was not mirrored, maxInFlight mirrors being outstanding. */
      readonly type: "mirror-dropped";
      readonly target: string;
      readonly shadow: string;
      readonly method: string;
      readonly reason: "in-flight-limit";
      readonly maxInFlight: number;
    }
  | {
      /** mirror-failed: a mirrored call ended with an error (never shown to the caller). */
      readonly type: "mirror-failed";
      readonly target: string;
      readonly shadow: string;
      readonly method: string;
      readonly code: Code;
    };
