import type { Logger } from "pino";
import type { BalancerEvent } from "../balancer/balancer-events.js";
import type { BreakerEvent } from "../breaker/breaker-events.js";
import { currentCallScope } from "../call/call-scope.js";
import type { RegistryEvent } from "../discovery/registry.js";
import type { IdempotencyEvent } from "../idempotency/events.js";
import type { LimitEvent } from "../limit/limit-events.js";
import type { MirrorEvent } from "../mirror/mirror-events.js";
import type { RetryEvent } from "../retry/retry-events.js";
import { traceFields } from "./call-outcome-fields.js";
import { traceContextKey } from "./context-keys.js";
import { codeName } from "./grpc-fields.js";
import { type MeshEvent, meshEventKind } from "./mesh-event.js";
import type { TraceContext } from "./trace-context.js";
import { validateLogger } from "./validate-logger.js";

/**
 * EventLogger turns the mesh's typed events into log lines. Pass `onEvent` to
 * a transport's, registry's or idempotency interceptor's `onEvent`, or the
 * typed handler of one family.
 */
export interface EventLogger {
  /** onEvent logs any MeshEvent. */
  onEvent(event: MeshEvent): void;
  /** onBalancerEvent: endpoint changes, ejections, restores at info; resolver trouble at warn. */
  onBalancerEvent(event: BalancerEvent): void;
  /** onBreakerEvent: every breaker transition at warn. */
  onBreakerEvent(event: BreakerEvent): void;
  /** onRegistryEvent: registrations at info; a lost lease or an error at warn. */
  onRegistryEvent(event: RegistryEvent): void;
  /** onRetryEvent: retries, hedges, give-ups and an empty budget at debug. */
  onRetryEvent(event: RetryEvent): void;
  /** onIdempotencyEvent: replays and conflicts at info; store trouble at warn; the rest at debug. */
  onIdempotencyEvent(event: IdempotencyEvent): void;
  /** onLimitEvent: concurrency limit changes and shed calls at debug (both are frequent under load). */
  onLimitEvent(event: LimitEvent): void;
  /** onMirrorEvent: mirrors sent, dropped and failed at debug (metrics count them; a down shadow fails every one). */
  onMirrorEvent(event: MirrorEvent): void;
}

type Level = "debug" | "info" | "warn";

// Resolver events report trouble (bad records, errors, staleness): warn,
// where the balancer's own news is info.
const RESOLVER_LEVEL: Level = "warn";
const REGISTRY_LEVELS: Readonly<Record<RegistryEvent["type"], Level>> = {
  registered: "info",
  deregistered: "info",
  "re-registered": "info",
  "lease-lost": "warn",
  error: "warn",
};
const IDEMPOTENCY_LEVELS: Readonly<Record<IdempotencyEvent["type"], Level>> = {
  claimed: "debug",
  waiting: "debug",
  completed: "debug",
  released: "debug",
  replayed: "info",
  conflict: "info",
  "too-large": "warn",
  "claim-lost": "warn",
  "claim-expired": "warn",
  "rolled-back": "warn",
  "store-error": "warn",
};

/**
 * createEventLogger returns handlers that log mesh events with `logger`, one
 * line each, message `<family> <type>` (e.g. `outlier ejected`) and a field
 * `event` (`outlier.ejected`). Errors are logged under `err`, codes by name
 * under `grpc.code`, registrations flattened; clock readings (`at`, `until`)
 * are left out, they mean nothing outside the process.
 *
 * Idempotency events are about the incoming call being handled (the
 * interceptor reports them from inside it): their lines carry that call's
 * `trace_id`, `span_id` (and `parent_span_id`), like its `finished call` line.
 */
export function createEventLogger(logger: Logger): EventLogger {
  validateLogger(logger, "createEventLogger");

  const write = (level: Level, family: string, event: object, trace?: TraceContext) => {
    if (!logger.isLevelEnabled(level)) return;
    const type = (event as { type: string }).type;
    logger[level](
      {
        ...(trace === undefined ? {} : traceFields(trace)),
        event: `${family}.${type}`,
        ...eventFields(event),
      },
      `${family} ${type}`,
    );
  };

  const handlers: EventLogger = {
    onEvent(event) {
      switch (meshEventKind(event)) {
        case "balancer":
          return handlers.onBalancerEvent(event as BalancerEvent);
        case "breaker":
          return handlers.onBreakerEvent(event as BreakerEvent);
        case "retry":
          return handlers.onRetryEvent(event as RetryEvent);
        case "registry":
          return handlers.onRegistryEvent(event as RegistryEvent);
        case "idempotency":
          return handlers.onIdempotencyEvent(event as IdempotencyEvent);
        case "limit":
          return handlers.onLimitEvent(event as LimitEvent);
        case "mirror":
          return handlers.onMirrorEvent(event as MirrorEvent);
        default:
          write("info", "mesh", event);
      }
    },
    onBalancerEvent(event) {
      write(event.source === "resolver" ? RESOLVER_LEVEL : "info", event.source, event);
    },
    onBreakerEvent(event) {
      write("warn", "breaker", event);
    },
    onRegistryEvent(event) {
      write(REGISTRY_LEVELS[event.type] ?? "info", "registry", event);
    },
    onRetryEvent(event) {
      write("debug", "retry", event);
    },
    onLimitEvent(event) {
      write("debug", "limit", event);
    },
    onIdempotencyEvent(event) {
      write(
        IDEMPOTENCY_LEVELS[event.type] ?? "info",
        "idempotency",
        event,
        currentCallScope()?.values.get(traceContextKey),
      );
    },
    onMirrorEvent(event) {
      write("debug", "mirror", event);
    },
  };
  return handlers;
}

const DROPPED = new Set(["type", "source", "at", "until"]);

/** eventFields flattens an event into log fields. */
function eventFields(event: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(event)) {
    if (DROPPED.has(k) || v === undefined) continue;
    if (k === "error") {
      out.err = v;
    } else if (k === "code" && typeof v === "number") {
      out["grpc.code"] = codeName(v);
    } else if (k === "registration" && typeof v === "object" && v !== null) {
      const r = v as { service?: string; instanceId?: string; address?: string };
      out.service = r.service;
      out.instance_id = r.instanceId;
      out.address = r.address;
    } else {
      out[k] = v;
    }
  }
  return out;
}
