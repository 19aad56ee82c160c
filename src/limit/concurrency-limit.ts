import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { CRITICALITY_HEADER, RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { onSettled } from "../call/settle.js";
import { type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import {
  type AdaptiveAlgorithm,
  type AdaptiveConcurrencyOptions,
  type AdaptiveLimitState,
  createAdaptiveLimit,
} from "./adaptive-limit.js";
import {
  admitsCriticality,
  type Criticality,
  type CriticalityShares,
  parseCriticality,
  validateCriticalityShares,
} from "./criticality.js";
import type { LimitEvent } from "./limit-events.js";

/** ConcurrencyLimitOptions configures createConcurrencyLimit. */
export interface ConcurrencyLimitOptions {
  /**
   * maxInFlight is the most calls one method may serve at once: one number for
   * every method, or a table keyed by `"pkg.Service/Method"` or `"pkg.Service"`
   * (a method's own entry beats its service's; each method of a service gets
   * the service's limit for itself). Methods not in the table are unlimited.
   * gRPC health is exempt unless named in the table. Give this or `adaptive`.
   */
  readonly maxInFlight?: number | Readonly<Record<string, number>>;
  /**
   * adaptive makes the limit follow measured latency instead (`"gradient2"`,
   * `"vegas"`, or AdaptiveConcurrencyOptions): every method but gRPC health
   * is limited, each on its own (`per: "method"`, default) or all together
   * (`per: "server"`). Give this or `maxInFlight`.
   */
  readonly adaptive?: AdaptiveConcurrencyOptions | AdaptiveAlgorithm;
  /**
   * pushbackMs is the `grpc-retry-pushback-ms` sent with RESOURCE_EXHAUSTED,
   * telling retrying clients when to come back (gRFC A6); default 50.
   */
  readonly pushbackMs?: number;
  /**
   * criticality gives each `x-mesh-criticality` its share of the limit
   * (CRITICALITY_SHARE_DEFAULTS: critical 1, default 1, sheddable 0.5), so
   * sheddable calls are refused first.
   */
  readonly criticality?: CriticalityShares;
  /**
   * criticalQueueMs is how long a `critical` call that finds the limit full
   * may wait for a slot before it is refused; default 200. Waiting critical
   * calls get freed slots first, in arrival order, ahead of any new call, so
   * the in-flight bound still holds: under overload critical calls take the
   * slots that sheddable and default calls give up instead of being refused
   * with them (Netflix's partitioned limiter lets a partition wait in a
   * backlog the same way). A limit that stays full past the wait refuses them
   * too. 0: refused at once, as other criticalities are.
   */
  readonly criticalQueueMs?: number;
  /** onEvent receives `limit-changed` and `shed` events. */
  readonly onEvent?: (event: LimitEvent) => void;
  /** clock times calls for the adaptive limit; default the system clock. */
  readonly clock?: Clock;
}

/** ConcurrencyLimit sheds calls beyond a per-method (or per-server) in-flight limit. */
export interface ConcurrencyLimit {
  /** interceptor belongs in the "limit" slot, right inside deadline+scope. */
  readonly interceptor: Interceptor;
  /** inFlight is the number of calls of `"pkg.Service/Method"` (or `"*"`, per server) holding a slot now. */
  inFlight(key: string): number;
  /** waiting is the number of critical calls of `key` waiting for a slot now (criticalQueueMs). */
  waiting(key: string): number;
  /**
   * limit is the current limit of `"pkg.Service/Method"` (or `"*"` for a
   * per-server adaptive limit); undefined when that key is unlimited.
   */
  limit(key: string): number | undefined;
}

/** CONCURRENCY_LIMIT_DEFAULTS are the defaults of ConcurrencyLimitOptions. */
export const CONCURRENCY_LIMIT_DEFAULTS = Object.freeze({
  // Long enough for a few in-flight calls to finish, short enough that a
  // client retrying at once does not wait noticeably longer than it would have queued.
  pushbackMs: 50,
  // Long enough for several calls in flight to finish and free a slot: in
  // the overload simulation (test/limit/gradient2-overload.test.ts) critical
  // calls at 60% of a CPU-bound server's capacity, under a limit of 4-6, lost
  // ~10% refused at once, up to 1.6% with 100 ms, none with 200 ms. Short
  // against the deadlines critical calls carry; only critical calls wait.
  criticalQueueMs: 200,
});

/** SERVER_LIMIT_KEY is the key of a per-server adaptive limit. */
export const SERVER_LIMIT_KEY = "*";

// Health checks must keep answering under load, or an overloaded server would
// also look dead and be ejected.
const HEALTH_SERVICE = "grpc.health.v1.Health";
const METHOD_KEY = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\/[A-Za-z_]\w*)?$/;

interface Slot {
  inFlight: number;
  adaptive: AdaptiveLimitState | undefined;
  limit: number;
  /** waiting are the critical calls waiting for a slot, oldest first; each grant takes the slot. */
  readonly waiting: Array<() => void>;
}

/**
 * createConcurrencyLimit builds a server interceptor limiting how many calls
 * of each method run at once, to a fixed number or to an adaptive limit. A
 * call over the limit (or over its criticality's share of it) gets
 * RESOURCE_EXHAUSTED naming the method and the limit, with a
 * `grpc-retry-pushback-ms` trailer, and its handler does not run.
 *
 * A call holds its slot until the client sees it end: a unary handler settles,
 * a response stream ends (or fails, or is abandoned), or the call is
 * cancelled or times out. A handler that ignores `ctx.signal` may run on past
 * that point, uncounted. The adaptive limit learns from the time calls hold
 * their slot; cancelled calls teach it nothing, timed-out ones count as drops.
 */
export function createConcurrencyLimit(options: ConcurrencyLimitOptions): ConcurrencyLimit {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      "createConcurrencyLimit: options must be { maxInFlight } or { adaptive }, with pushbackMs?",
    );
  }
  const opts = { ...CONCURRENCY_LIMIT_DEFAULTS, ...stripUndefined(options) };
  if (opts.maxInFlight === undefined && opts.adaptive === undefined) {
    throw new TypeError(
      'createConcurrencyLimit: maxInFlight undefined and adaptive undefined: give a fixed maxInFlight or adaptive (e.g. "gradient2")',
    );
  }
  if (opts.maxInFlight !== undefined && opts.adaptive !== undefined) {
    throw new TypeError(
      "createConcurrencyLimit: give maxInFlight or adaptive, not both (bound an adaptive limit with adaptive.maxLimit)",
    );
  }
  const adaptive = opts.adaptive === undefined ? undefined : createAdaptiveLimit(opts.adaptive);
  const fixedLimitFor =
    opts.maxInFlight === undefined ? undefined : compileLimits(opts.maxInFlight);
  validatePushback(opts.pushbackMs);
  if (
    !(
      typeof opts.criticalQueueMs === "number" &&
      Number.isSafeInteger(opts.criticalQueueMs) &&
      opts.criticalQueueMs >= 0 &&
      opts.criticalQueueMs <= 60_000
    )
  ) {
    throw new RangeError(
      `criticalQueueMs ${String(opts.criticalQueueMs)} must be an integer in 0..60000`,
    );
  }
  const criticalQueueMs = opts.criticalQueueMs;
  const shares = validateCriticalityShares(opts.criticality);
  if (opts.onEvent !== undefined && typeof opts.onEvent !== "function") {
    throw new TypeError("createConcurrencyLimit: onEvent must be a function");
  }
  const onEvent = opts.onEvent;
  const clock = opts.clock ?? systemClock;
  const pushback = String(opts.pushbackMs);
  const slots = new Map<string, Slot>();

  const slotFor = (service: string, method: string): Slot | undefined => {
    let key = method;
    let fixed: number | undefined;
    if (adaptive !== undefined) {
      if (service === HEALTH_SERVICE) return undefined;
      if (adaptive.per === "server") key = SERVER_LIMIT_KEY;
    } else {
      fixed = fixedLimitFor?.(service, method);
      if (fixed === undefined) return undefined;
    }
    let slot = slots.get(key);
    if (slot === undefined) {
      const state = adaptive?.initial();
      slot = {
        inFlight: 0,
        waiting: [],
        adaptive: state,
        limit:
          state === undefined || adaptive === undefined ? (fixed ?? 1) : adaptive.limitOf(state),
      };
      slots.set(key, slot);
    }
    return slot;
  };

  const learn = (
    key: string,
    slot: Slot,
    startMs: number,
    inFlightAtStart: number,
    error: unknown,
  ) => {
    if (adaptive === undefined || slot.adaptive === undefined) return;
    let didDrop = false;
    if (error !== undefined) {
      const code = ConnectError.from(error).code;
      if (code === Code.Canceled) return;
      didDrop = code === Code.DeadlineExceeded;
    }
    const nowMs = clock.now();
    const next = adaptive.onSample(slot.adaptive, {
      nowMs,
      rttMs: Math.max(0, nowMs - startMs),
      inFlight: inFlightAtStart,
      didDrop,
    });
    slot.adaptive = next;
    const limit = adaptive.limitOf(next);
    if (limit !== slot.limit) {
      const from = slot.limit;
      slot.limit = limit;
      onEvent?.({
        type: "limit-changed",
        key,
        from,
        to: limit,
        rttMs: next.lastWindow?.avgRttMs ?? 0,
        algorithm: adaptive.algorithm,
      });
    }
  };

  const shed = (slot: Slot, key: string, method: string, criticality: Criticality) => {
    const limit = slot.limit;
    onEvent?.({ type: "shed", key, method, criticality, limit, inFlight: slot.inFlight });
    return new ConnectError(
      criticality === "default"
        ? `concurrency limit of ${limit} calls in flight reached for ${method}`
        : `concurrency limit of ${limit} calls in flight reached for ${method} (${criticality} share)`,
      Code.ResourceExhausted,
      new Headers({ [RETRY_PUSHBACK_HEADER]: pushback }),
    );
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const method = `${service}/${req.method.name}`;
    const slot = slotFor(service, method);
    if (slot === undefined) {
      return next(req);
    }
    const key = adaptive?.per === "server" ? SERVER_LIMIT_KEY : method;
    const criticality = parseCriticality(req.header.get(CRITICALITY_HEADER));
    // Waiting critical calls come first: a new call is admitted only when none wait.
    if (
      slot.waiting.length > 0 ||
      !admitsCriticality(shares, criticality, slot.inFlight, slot.limit)
    ) {
      if (criticality !== "critical" || criticalQueueMs === 0) {
        throw shed(slot, key, method, criticality);
      }
      // A grant counts this call in inFlight as it hands it the slot.
      if (!(await waitForSlot(slot, criticalQueueMs, req.signal, clock))) {
        throw shed(slot, key, method, criticality);
      }
    } else {
      slot.inFlight++;
    }
    const inFlightAtStart = slot.inFlight;
    const startMs = adaptive === undefined ? 0 : clock.now();
    let released = false;
    const release = (error: unknown) => {
      if (released) return;
      released = true;
      req.signal.removeEventListener("abort", onAbort);
      slot.inFlight--;
      learn(key, slot, startMs, inFlightAtStart, error);
      grantWaiting(slot, shares);
      if (slot.inFlight === 0 && slot.waiting.length === 0 && adaptive === undefined) {
        slots.delete(key);
      }
    };
    // Cancellation and deadlines end the call for the client even when the
    // handler or its stream never settles.
    const onAbort = () => release(req.signal.reason ?? new ConnectError("aborted", Code.Canceled));
    req.signal.addEventListener("abort", onAbort, { once: true });
    return onSettled(next(req), (error) => release(error));
  };

  return {
    interceptor,
    inFlight: (key) => slots.get(key)?.inFlight ?? 0,
    waiting: (key) => slots.get(key)?.waiting.length ?? 0,
    limit(key) {
      const slot = slots.get(key);
      if (slot !== undefined) return slot.limit;
      if (adaptive !== undefined) {
        if (key.startsWith(`${HEALTH_SERVICE}/`)) return undefined;
        if ((adaptive.per === "server") !== (key === SERVER_LIMIT_KEY)) return undefined;
        return adaptive.limitOf(adaptive.initial());
      }
      const slash = key.lastIndexOf("/");
      return fixedLimitFor?.(key.slice(0, Math.max(0, slash)), key);
    },
  };
}

/**
 * waitForSlot queues a critical call on a full slot: true once `grantWaiting`
 * gives it the slot (inFlight already counted), false when `waitMs` pass
 * first; a cancelled or timed-out call rejects with its signal's reason.
 */
function waitForSlot(
  slot: Slot,
  waitMs: number,
  signal: AbortSignal,
  clock: Clock,
): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason ?? new ConnectError("aborted", Code.Canceled));
      return;
    }
    const leave = () => {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      const i = slot.waiting.indexOf(grant);
      if (i >= 0) slot.waiting.splice(i, 1);
    };
    const grant = () => {
      leave();
      resolve(true);
    };
    const onAbort = () => {
      leave();
      reject(signal.reason ?? new ConnectError("aborted", Code.Canceled));
    };
    const timer = clock.setTimeout(() => {
      leave();
      resolve(false);
    }, waitMs);
    signal.addEventListener("abort", onAbort, { once: true });
    slot.waiting.push(grant);
  });
}

/** grantWaiting hands free slots to waiting critical calls, oldest first. */
function grantWaiting(slot: Slot, shares: Readonly<Required<CriticalityShares>>): void {
  while (
    slot.waiting.length > 0 &&
    admitsCriticality(shares, "critical", slot.inFlight, slot.limit)
  ) {
    const grant = slot.waiting[0] as () => void;
    slot.inFlight++;
    grant();
  }
}

function compileLimits(
  maxInFlight: NonNullable<ConcurrencyLimitOptions["maxInFlight"]>,
): (service: string, method: string) => number | undefined {
  if (typeof maxInFlight === "number") {
    validateLimit("maxInFlight", maxInFlight);
    return (service) => (service === HEALTH_SERVICE ? undefined : maxInFlight);
  }
  if (typeof maxInFlight !== "object" || maxInFlight === null) {
    throw new TypeError(
      `maxInFlight ${String(maxInFlight)} must be a number or a table of method limits`,
    );
  }
  const table = new Map<string, number>();
  for (const [key, limit] of Object.entries(maxInFlight)) {
    if (!METHOD_KEY.test(key)) {
      throw new RangeError(
        `maxInFlight key ${JSON.stringify(key)} must be "pkg.Service/Method" or "pkg.Service"`,
      );
    }
    validateLimit(`maxInFlight[${JSON.stringify(key)}]`, limit);
    table.set(key, limit);
  }
  return (service, method) => table.get(method) ?? table.get(service);
}

function validateLimit(name: string, limit: unknown): void {
  if (!(typeof limit === "number" && Number.isSafeInteger(limit) && limit >= 1)) {
    throw new RangeError(`${name} ${String(limit)} must be an integer >= 1`);
  }
}

function validatePushback(pushbackMs: unknown): void {
  // gRFC A6: clients read anything but a non-negative integer as "do not retry".
  if (!(typeof pushbackMs === "number" && Number.isSafeInteger(pushbackMs) && pushbackMs >= 0)) {
    throw new RangeError(`pushbackMs ${String(pushbackMs)} must be an integer >= 0`);
  }
}
