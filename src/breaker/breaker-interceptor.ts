import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { onSettled } from "../call/settle.js";
import { isEndpointLocalFailure } from "../call/transport-error.js";
import { type Clock, systemClock } from "../clock.js";
import { type BreakerEvent, breakerStateKey } from "./breaker-events.js";
import { BreakerOpenError, withoutStack } from "./breaker-open-error.js";
import {
  type BreakerRegistry,
  type BreakerRegistryOptions,
  createBreakerRegistry,
} from "./breaker-registry.js";
import type { Admission, CircuitBreakerOptions } from "./circuit-breaker.js";

/** BreakerOptions configures the client's per-method (or per-service) circuit breakers. */
export interface BreakerOptions extends Omit<CircuitBreakerOptions, "onTransition"> {
  /** scope keys breakers by target + method (default) or target + service. */
  readonly scope?: "method" | "service";
  /** idleMs forgets a closed breaker unused this long; default 300_000. */
  readonly idleMs?: number;
}

export { type BreakerEvent, breakerStateKey } from "./breaker-events.js";

/**
 * createBreakerInterceptor runs each attempt through the circuit breaker of
 * its target + method (or service). An open breaker fails the attempt at once
 * with UNAVAILABLE naming the breaker and when it will let a probe through; no
 * request is sent, and the retry interceptor does not retry it. Outcomes feed
 * the breaker: UNAVAILABLE, INTERNAL, UNKNOWN and DEADLINE_EXCEEDED count as
 * failures by default; caller errors (INVALID_ARGUMENT, NOT_FOUND...) do not.
 * One registry per transport creates breakers lazily and runs no timers.
 */
export function createBreakerInterceptor(
  options: BreakerOptions,
  deps: { target: string; clock?: Clock; onEvent?: (event: BreakerEvent) => void },
): {
  interceptor: Interceptor;
  registry: BreakerRegistry;
  /**
   * gate answers the refusal the breaker would give the request's next
   * attempt (with breakerStateKey set), or undefined when it would admit it,
   * without acquiring anything. The retry interceptor asks it before building
   * an attempt, so a call refused by an open breaker costs no attempt: no
   * signal, no headers, no attempt span. The interceptor still decides.
   */
  gate: (req: UnaryRequest | StreamRequest) => ConnectError | undefined;
} {
  const clock = deps.clock ?? systemClock;
  const { scope = "method", idleMs, ...breaker } = options;
  if (scope !== "method" && scope !== "service") {
    throw new RangeError(
      `circuitBreaker.scope ${JSON.stringify(scope)} must be "method" or "service"`,
    );
  }
  const registryOptions: BreakerRegistryOptions = {
    breaker,
    ...(idleMs === undefined ? {} : { idleMs }),
    onTransition: (key, t) =>
      deps.onEvent?.({ type: "breaker", key, from: t.from, to: t.to, reason: t.reason, at: t.at }),
  };
  const registry = createBreakerRegistry(registryOptions);
  const keys = new WeakMap<object, string>();
  const keyOf = (method: DescMethod): string => {
    let key = keys.get(method);
    if (key === undefined) {
      key =
        scope === "method"
          ? `${deps.target} ${method.parent.typeName}/${method.name}`
          : `${deps.target} ${method.parent.typeName}`;
      keys.set(method, key);
    }
    return key;
  };
  const refuse = (
    req: UnaryRequest | StreamRequest,
    key: string,
    refusal: Extract<Admission, { admitted: false }>,
    now: number,
  ): ConnectError => {
    req.contextValues.set(breakerStateKey, refusal.state);
    const when =
      refusal.retryAtMs === undefined
        ? "after the probes in flight"
        : `in ${Math.max(0, Math.ceil(refusal.retryAtMs - now))} ms`;
    return withoutStack(
      () =>
        new ConnectError(
          `circuit breaker ${JSON.stringify(key)} is ${refusal.state}; next probe ${when}`,
          Code.Unavailable,
          undefined,
          undefined,
          new BreakerOpenError(`breaker ${key} is ${refusal.state}`),
        ),
    );
  };
  const gate = (req: UnaryRequest | StreamRequest): ConnectError | undefined => {
    const key = keyOf(req.method);
    const breaker = registry.peek(key);
    if (breaker === undefined) return undefined;
    const now = clock.now();
    const refusal = breaker.refusal(now);
    return refusal === undefined ? undefined : refuse(req, key, refusal, now);
  };
  const interceptor: Interceptor = (next) => async (req) => {
    const key = keyOf(req.method);
    const started = clock.now();
    const admission = registry.tryAcquire(key, started);
    if (!admission.admitted) {
      throw refuse(req, key, admission, started);
    }
    req.contextValues.set(breakerStateKey, registry.peek(key)?.state(started).type);
    const release = (error: unknown) => {
      const now = clock.now();
      const latencyMs = now - started;
      admission.release(
        error === undefined
          ? { ok: true, latencyMs }
          : isEndpointLocalFailure(error)
            ? // One endpoint's broken connection (a killed replica fails all its
              // calls at once) is outlier ejection's business; the breaker
              // judges the method, so it does not count it (CANCELED is ignored).
              { ok: false, code: Code.Canceled, latencyMs }
            : { ok: false, code: ConnectError.from(error).code, latencyMs },
        now,
      );
    };
    return onSettled(next(req), release);
  };
  return { interceptor, registry, gate };
}
