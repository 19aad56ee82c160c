import type { BalancerEvent } from "../balancer/balancer-events.js";
import type { BreakerEvent } from "../breaker/breaker-events.js";
import type { RegistryEvent } from "../discovery/registry.js";
import type { IdempotencyEvent } from "../idempotency/events.js";
import type { LimitEvent } from "../limit/limit-events.js";
import type { MirrorEvent } from "../mirror/mirror-events.js";
import type { RetryEvent } from "../retry/retry-events.js";

/**
 * MeshEvent is any typed event the mesh reports: a transport's `onEvent`
 * (balancer, retry, breaker), a registry's, the idempotency interceptor's, or
 * a concurrency limit's.
 */
export type MeshEvent =
  | BalancerEvent
  | BreakerEvent
  | RetryEvent
  | RegistryEvent
  | IdempotencyEvent
  | LimitEvent
  | MirrorEvent;

/** MeshEventKind is the family of a MeshEvent. */
export type MeshEventKind =
  | "balancer"
  | "breaker"
  | "retry"
  | "registry"
  | "idempotency"
  | "limit"
  | "mirror";

const KIND_BY_TYPE: Readonly<Record<string, MeshEventKind>> = {
  breaker: "breaker",
  retry: "retry",
  "give-up": "retry",
  "budget-exhausted": "retry",
  hedge: "retry",
  registered: "registry",
  deregistered: "registry",
  "lease-lost": "registry",
  "re-registered": "registry",
  error: "registry",
  claimed: "idempotency",
  waiting: "idempotency",
  replayed: "idempotency",
  conflict: "idempotency",
  completed: "idempotency",
  released: "idempotency",
  "too-large": "idempotency",
  "claim-lost": "idempotency",
  "claim-expired": "idempotency",
  "rolled-back": "idempotency",
  "store-error": "idempotency",
  "limit-changed": "limit",
  shed: "limit",
  "mirror-sent": "mirror",
  "mirror-dropped": "mirror",
  "mirror-failed": "mirror",
};

/**
 * meshEventKind tells the family of an event: balancer events carry a
 * `source`; the others are told apart by their `type`, which no two families
 * share. Unknown events return undefined.
 * @private
 */
export function meshEventKind(event: MeshEvent): MeshEventKind | undefined {
  if ("source" in event) {
    return "balancer";
  }
  return KIND_BY_TYPE[event.type];
}
