import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { onSettled } from "../call/settle.js";
import { stripUndefined } from "../strip-undefined.js";

/** ConcurrencyLimitOptions configures createConcurrencyLimit. */
export interface ConcurrencyLimitOptions {
  /**
   * maxInFlight is the most calls one method may serve at once: one number for
   * every method, or a table keyed by `"pkg.Service/Method"` or `"pkg.Service"`
   * (a method's own entry beats its service's; each method of a service gets
   * the service's limit for itself). Methods not in the table are unlimited.
   * gRPC health is exempt unless named in the table.
   */
  readonly maxInFlight: number | Readonly<Record<string, number>>;
  /**
   * pushbackMs is the `grpc-retry-pushback-ms` sent with RESOURCE_EXHAUSTED,
   * telling retrying clients when to come back (gRFC A6); default 50.
   */
  readonly pushbackMs?: number;
}

/** ConcurrencyLimit sheds calls beyond a per-method in-flight limit. */
export interface ConcurrencyLimit {
  /** interceptor belongs in the "limit" slot, right inside deadline+scope. */
  readonly interceptor: Interceptor;
  /** inFlight is the number of calls of `"pkg.Service/Method"` holding a slot now. */
  inFlight(method: string): number;
}

/** CONCURRENCY_LIMIT_DEFAULTS are the defaults of ConcurrencyLimitOptions. */
export const CONCURRENCY_LIMIT_DEFAULTS = Object.freeze({
  // Long enough for a few in-flight calls to finish, short enough that a
  // client retrying at once does not wait noticeably longer than it would have queued.
  pushbackMs: 50,
});

// Health checks must keep answering under load, or an overloaded server would
// also look dead and be ejected.
const HEALTH_SERVICE = "grpc.health.v1.Health";
const METHOD_KEY = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\/[A-Za-z_]\w*)?$/;

/**
 * createConcurrencyLimit builds a server interceptor limiting how many calls
 * of each method run at once. A call over the limit gets RESOURCE_EXHAUSTED
 * naming the method and the limit, with a `grpc-retry-pushback-ms` trailer,
 * and its handler does not run.
 *
 * A call holds its slot until the client sees it end: a unary handler settles,
 * a response stream ends (or fails, or is abandoned), or the call is
 * cancelled or times out. A handler that ignores `ctx.signal` may run on past
 * that point, uncounted.
 */
export function createConcurrencyLimit(options: ConcurrencyLimitOptions): ConcurrencyLimit {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("createConcurrencyLimit: options must be { maxInFlight, pushbackMs? }");
  }
  const opts = { ...CONCURRENCY_LIMIT_DEFAULTS, ...stripUndefined(options) };
  const limitFor = compileLimits(opts.maxInFlight);
  validatePushback(opts.pushbackMs);
  const pushback = String(opts.pushbackMs);
  const inFlight = new Map<string, number>();

  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const method = `${service}/${req.method.name}`;
    const limit = limitFor(service, method);
    if (limit === undefined) {
      return next(req);
    }
    const now = inFlight.get(method) ?? 0;
    if (now >= limit) {
      throw new ConnectError(
        `concurrency limit of ${limit} calls in flight reached for ${method}`,
        Code.ResourceExhausted,
        new Headers({ [RETRY_PUSHBACK_HEADER]: pushback }),
      );
    }
    inFlight.set(method, now + 1);
    const release = once(() => {
      req.signal.removeEventListener("abort", release);
      const left = (inFlight.get(method) ?? 1) - 1;
      if (left === 0) {
        inFlight.delete(method);
      } else {
        inFlight.set(method, left);
      }
    });
    // Cancellation and deadlines end the call for the client even when the
    // handler or its stream never settles.
    req.signal.addEventListener("abort", release, { once: true });
    return onSettled(next(req), release);
  };

  return {
    interceptor,
    inFlight: (method) => inFlight.get(method) ?? 0,
  };
}

function compileLimits(
  maxInFlight: ConcurrencyLimitOptions["maxInFlight"] | undefined,
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

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}
