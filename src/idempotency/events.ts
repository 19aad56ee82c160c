import type { Code } from "@connectrpc/connect";

/**
 * IdempotencyCall names the keyed call an event is about. The key itself
 * never appears: `keyDigest` is a short SHA-256 prefix of it.
 */
export interface IdempotencyCall {
  /** method is `package.Service/Method`. */
  readonly method: string;
  readonly principal: string;
  readonly keyDigest: string;
}

/**
 * IdempotencyEvent is what the idempotency interceptor reports through
 * `onEvent`, for logs and metrics:
 * - `claimed`: this call owns the key and runs the handler;
 * - `waiting`: a call with the same key is in progress; this one waits for it;
 * - `replayed`: a stored outcome was sent instead of running the handler;
 * - `conflict`: the key is `reused` with another payload, or `in-use`
 *   (onConcurrent "abort");
 * - `completed`: the outcome was stored for replay;
 * - `released`: a transient error freed the key so a retry runs the handler;
 * - `too-large`: the outcome was over `maxStoredBytes` and not stored (marked
 *   or released as `onTooLarge` says);
 * - `claim-lost`: the lease ran out and another call owns the key, so this
 *   outcome was not stored (the handler ran longer than its deadline allows,
 *   or its heartbeat could not renew the lease);
 * - `claim-expired`: a heartbeat found the claim no longer ours (expired or
 *   taken over); renewals stop, and the outcome will not be stored;
 * - `rolled-back`: a transactional store did not commit: the handler's writes
 *   are undone and the call fails with ABORTED;
 * - `store-error`: the store failed during `operation`; with `failOpen` the
 *   handler ran without protection.
 */
export type IdempotencyEvent =
  | ({ readonly type: "claimed"; readonly leaseMs: number } & IdempotencyCall)
  | ({ readonly type: "waiting" } & IdempotencyCall)
  | ({ readonly type: "replayed"; readonly code: Code | undefined } & IdempotencyCall)
  | ({ readonly type: "conflict"; readonly reason: "reused" | "in-use" } & IdempotencyCall)
  | ({
      readonly type: "completed";
      readonly code: Code | undefined;
      readonly bytes: number;
    } & IdempotencyCall)
  | ({ readonly type: "released"; readonly code: Code } & IdempotencyCall)
  | ({
      readonly type: "too-large";
      readonly bytes: number;
      readonly maxBytes: number;
      readonly action: "mark" | "release";
    } & IdempotencyCall)
  | ({ readonly type: "claim-lost" } & IdempotencyCall)
  | ({ readonly type: "claim-expired" } & IdempotencyCall)
  | ({ readonly type: "rolled-back" } & IdempotencyCall)
  | ({
      readonly type: "store-error";
      readonly operation: "claim" | "complete" | "release" | "renew";
      readonly error: Error;
      readonly failOpen: boolean;
    } & IdempotencyCall);
