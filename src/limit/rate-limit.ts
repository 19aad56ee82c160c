import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type UnaryRequest,
} from "@connectrpc/connect";
import { RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { peerIdentityKey, principalOf } from "../call/peer-identity.js";
import { createMemoryRateLimitStore } from "./memory-rate-limit-store.js";
import type { RateLimitEvent } from "./rate-limit-events.js";
import type { RateLimitStore, RateLimitVerdict } from "./rate-limit-store.js";
import { type TokenBucketLimit, validateTokenBucketLimit } from "./token-bucket.js";

/** RateLimitRule is one token bucket limit and what it is counted per. */
export interface RateLimitRule {
  /** ratePerSecond is the sustained rate of calls (> 0). */
  readonly ratePerSecond: number;
  /** burst is how many calls may pass at once after a quiet spell; default one second's worth (ceil(ratePerSecond), at least 1). */
  readonly burst?: number;
  /**
   * per is what gets its own bucket: `"method"` (the default) one bucket per
   * method for all callers, `"principal"` one per method and caller (see
   * RateLimitOptions.principal; callers without a principal share one bucket).
   */
  readonly per?: "method" | "principal";
}

/** RateLimitOptions configures createRateLimit (the server's `rateLimit` option). */
export interface RateLimitOptions {
  /**
   * limits is one rule for every method, or a table keyed by
   * `"pkg.Service/Method"` or `"pkg.Service"` (a method's own entry beats its
   * service's; each method of a service gets its own bucket). Methods not in
   * the table are not limited; gRPC health is exempt unless named.
   */
  readonly limits: RateLimitRule | Readonly<Record<string, RateLimitRule>>;
  /**
   * principal names the caller for `per: "principal"` rules; default the
   * peer's SPIFFE ID (`principalOf`, mTLS). The rate-limit slot runs before
   * user interceptors, so a principal from a header must be read here.
   */
  readonly principal?: (req: UnaryRequest | StreamRequest) => string | undefined;
  /**
   * store keeps the buckets; default an in-memory store bounded to 10_000
   * buckets (LRU). `createRedisRateLimitStore` shares one limit among replicas.
   */
  readonly store?: RateLimitStore;
  /**
   * failMode says what a call gets when the store cannot decide (Redis down
   * or slower than its timeout): `"open"` (default) admits it, `"closed"`
   * refuses it with UNAVAILABLE. Either way a `rate-limit-store-error` event says so.
   */
  readonly failMode?: "open" | "closed";
  /** onEvent receives refusals and store errors. */
  readonly onEvent?: (event: RateLimitEvent) => void;
}

/** RateLimitStats counts a rate limit's decisions since it was built. */
export interface RateLimitStats {
  readonly admitted: number;
  readonly refused: number;
  /** storeErrors counts calls the store could not decide (the fail mode then applied). */
  readonly storeErrors: number;
}

/** RateLimit is a server rate limit: its interceptor and its counters. */
export interface RateLimit {
  /** interceptor belongs in the server's "rate-limit" slot. */
  readonly interceptor: Interceptor;
  /** stats returns the counters. */
  stats(): RateLimitStats;
}

interface CompiledRule {
  readonly limit: TokenBucketLimit;
  readonly perPrincipal: boolean;
}

// Health checks must keep answering, or a limited server would look dead.
const HEALTH_SERVICE = "grpc.health.v1.Health";
const METHOD_KEY = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\/[A-Za-z_]\w*)?$/;

/**
 * createRateLimit builds a server interceptor that answers calls over a token
 * bucket limit with RESOURCE_EXHAUSTED and `grpc-retry-pushback-ms` set to
 * the time until a token is there (so retrying clients and load-aware
 * balancers know when to come back); the handler does not run. Buckets are
 * per method, or per method and principal.
 */
export function createRateLimit(options: RateLimitOptions): RateLimit {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("createRateLimit: options must be { limits, ... }");
  }
  const ruleFor = compileRules(options.limits);
  const failMode = options.failMode ?? "open";
  if (failMode !== "open" && failMode !== "closed") {
    throw new RangeError(`failMode ${JSON.stringify(failMode)} must be "open" or "closed"`);
  }
  if (options.principal !== undefined && typeof options.principal !== "function") {
    throw new TypeError("principal must be a function (req) => string | undefined");
  }
  const principal =
    options.principal ??
    ((req: UnaryRequest | StreamRequest) => principalOf(req.contextValues.get(peerIdentityKey)));
  const store = options.store ?? createMemoryRateLimitStore();
  const emit = options.onEvent;
  let admitted = 0;
  let refused = 0;
  let storeErrors = 0;

  const refuse = (method: string, rule: CompiledRule, retryAfterMs: number): never => {
    refused++;
    emit?.({
      type: "rate-limited",
      method,
      per: rule.perPrincipal ? "principal" : "method",
      ratePerSecond: rule.limit.ratePerSecond,
      retryAfterMs,
    });
    throw new ConnectError(
      `rate limit of ${rule.limit.ratePerSecond} calls/s${rule.perPrincipal ? " per principal" : ""} reached for ${method}`,
      Code.ResourceExhausted,
      new Headers({ [RETRY_PUSHBACK_HEADER]: String(retryAfterMs) }),
    );
  };

  const storeFailed = (method: string, error: unknown): void => {
    storeErrors++;
    emit?.({ type: "rate-limit-store-error", method, failMode, error });
    if (failMode === "closed") {
      refused++;
      throw new ConnectError(
        `rate limit for ${method} cannot be checked: the rate limit store is unavailable`,
        Code.Unavailable,
        undefined,
        undefined,
        error,
      );
    }
    admitted++;
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const method = `${service}/${req.method.name}`;
    const rule = ruleFor(service, method);
    if (rule === undefined) return next(req);
    const key = rule.perPrincipal ? `${method}\n${principal(req) ?? ""}` : method;
    let verdict: RateLimitVerdict;
    try {
      const taken = store.take(key, rule.limit, 1);
      // The memory store answers synchronously: no await on the hot path.
      verdict = isPromiseLike(taken) ? await taken : taken;
    } catch (e) {
      storeFailed(method, e);
      return next(req);
    }
    if (!verdict.allowed) return refuse(method, rule, verdict.retryAfterMs);
    admitted++;
    return next(req);
  };

  return {
    interceptor,
    stats: () => ({ admitted, refused, storeErrors }),
  };
}

function compileRule(name: string, rule: RateLimitRule): CompiledRule {
  if (typeof rule !== "object" || rule === null) {
    throw new TypeError(`${name} ${String(rule)} must be { ratePerSecond, burst?, per? }`);
  }
  const limit = {
    ratePerSecond: rule.ratePerSecond,
    burst: rule.burst ?? Math.max(1, Math.ceil(rule.ratePerSecond)),
  };
  validateTokenBucketLimit(name, limit);
  const per = rule.per ?? "method";
  if (per !== "method" && per !== "principal") {
    throw new RangeError(`${name}.per ${JSON.stringify(per)} must be "method" or "principal"`);
  }
  return Object.freeze({ limit: Object.freeze(limit), perPrincipal: per === "principal" });
}

function isRule(value: object): value is RateLimitRule {
  return "ratePerSecond" in value;
}

function compileRules(
  limits: RateLimitOptions["limits"] | undefined,
): (service: string, method: string) => CompiledRule | undefined {
  if (typeof limits !== "object" || limits === null) {
    throw new TypeError(`limits ${String(limits)} must be a rule or a table of method rules`);
  }
  if (isRule(limits)) {
    const rule = compileRule("limits", limits);
    return (service) => (service === HEALTH_SERVICE ? undefined : rule);
  }
  const table = new Map<string, CompiledRule>();
  for (const [key, rule] of Object.entries(limits)) {
    if (!METHOD_KEY.test(key)) {
      throw new RangeError(
        `limits key ${JSON.stringify(key)} must be "pkg.Service/Method" or "pkg.Service"`,
      );
    }
    table.set(key, compileRule(`limits[${JSON.stringify(key)}]`, rule));
  }
  return (service, method) => table.get(method) ?? table.get(service);
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as Partial<PromiseLike<T>>).then === "function";
}
