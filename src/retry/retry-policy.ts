import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type Backoff, createBackoff } from "../call/backoff.js";
import type { RetryBudgetOptions } from "./retry-budget.js";

/**
 * RetryPolicy says when and how a method's calls are retried. Defaults
 * (RETRY_POLICY_DEFAULTS): 3 attempts (capped at maxAttemptsCap 5), full-jitter
 * backoff from 50 ms doubling to 1 s, retry on UNAVAILABLE (RESOURCE_EXHAUSTED
 * only with server pushback), no per-attempt timeout, 5 ms minimum per attempt,
 * 64 KiB replay buffer for client streams.
 */
export interface RetryPolicy {
  /** maxAttempts counts the first attempt too; 1 turns retries off. */
  readonly maxAttempts: number;
  /** maxAttemptsCap bounds maxAttempts (values above are capped); raise it explicitly. */
  readonly maxAttemptsCap: number;
  readonly initialBackoffMs: number;
  readonly backoffMultiplier: number;
  readonly maxBackoffMs: number;
  /** retryableCodes are the codes worth another attempt. */
  readonly retryableCodes: readonly Code[];
  /** perAttemptTimeoutMs bounds each attempt (never beyond the call's deadline). */
  readonly perAttemptTimeoutMs: number | undefined;
  /** minAttemptMs: no attempt starts with less time left than this. */
  readonly minAttemptMs: number;
  /**
   * retryable overrides the safety check: true retries the method even
   * without an idempotency level or key (you vouch that it is safe).
   */
  readonly retryable: boolean | undefined;
  /** maxReplayBytes bounds the client-stream messages kept to replay them. */
  readonly maxReplayBytes: number;
}

/** RETRY_POLICY_DEFAULTS are the defaults of every RetryPolicy field. */
export const RETRY_POLICY_DEFAULTS: RetryPolicy = Object.freeze({
  maxAttempts: 3,
  maxAttemptsCap: 5,
  // gRPC's service-config examples start around 100 ms; on a mesh where a
  // retry goes to another replica, a shorter first wait keeps p99 low.
  initialBackoffMs: 50,
  backoffMultiplier: 2,
  maxBackoffMs: 1_000,
  retryableCodes: Object.freeze([Code.Unavailable]) as readonly Code[],
  perAttemptTimeoutMs: undefined,
  minAttemptMs: 5,
  retryable: undefined,
  maxReplayBytes: 64 * 1024,
});

/** HedgingOptions turns on hedged requests for NO_SIDE_EFFECTS unary methods. */
export interface HedgingOptions {
  /** methods to hedge (`pkg.Service/Method`); default every NO_SIDE_EFFECTS unary method. */
  readonly methods?: readonly string[];
  /** delayMs before the next hedge: a fixed time, or "p95" of the method's recent latency. */
  readonly delayMs: number | "p95";
  /** minDelayMs is the floor under a "p95" delay and its value before 20 samples; default 10. */
  readonly minDelayMs?: number;
  /** maxAttempts in flight at once, the first included; default 2. */
  readonly maxAttempts?: number;
}

/** RetryOptions configures createRetryInterceptor; top-level fields are the default policy. */
export interface RetryOptions extends Partial<RetryPolicy> {
  /** services overrides the policy per service (`pkg.Service`); false turns retries off. */
  readonly services?: Readonly<Record<string, Partial<RetryPolicy> | false>>;
  /** methods overrides per method (`pkg.Service/Method`); beats services. */
  readonly methods?: Readonly<Record<string, Partial<RetryPolicy> | false>>;
  /** budget caps retries per target (default 20% of calls + 10/s over 10 s); false: no cap. */
  readonly budget?: RetryBudgetOptions | false;
  /** hedging is off unless given. */
  readonly hedging?: HedgingOptions | false;
}

/**
 * ResolvedPolicy is a validated RetryPolicy with its attempt cap applied and
 * its backoff built. @private
 */
export interface ResolvedPolicy extends RetryPolicy {
  /** attempts is min(maxAttempts, maxAttemptsCap). */
  readonly attempts: number;
  readonly backoff: Backoff;
}

/**
 * isRetrySafe says whether a failed call of `method` may be sent again: the
 * policy's `retryable` override, else an idempotency level of NO_SIDE_EFFECTS
 * or IDEMPOTENT, else an idempotency key on the request.
 */
export function isRetrySafe(
  policy: Pick<RetryPolicy, "retryable">,
  method: Pick<DescMethod, "idempotency">,
  hasIdempotencyKey: boolean,
): boolean {
  return (
    policy.retryable ??
    (method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS ||
      method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT ||
      hasIdempotencyKey)
  );
}

/**
 * createPolicyTable validates the options once and returns the lookup of a
 * method's policy (methods beat services beat the default); false: no retries.
 * @private
 */
export function createPolicyTable(
  options: RetryOptions,
  random: () => number,
): (method: DescMethod) => ResolvedPolicy | false {
  const base = resolvePolicy(
    { ...RETRY_POLICY_DEFAULTS, ...definedOnly(options) },
    "retry",
    random,
  );
  const overrides = new Map<string, ResolvedPolicy | false>();
  for (const [scope, table] of [
    ["services", options.services],
    ["methods", options.methods],
  ] as const) {
    for (const [name, o] of Object.entries(table ?? {})) {
      overrides.set(
        name,
        o === false
          ? false
          : resolvePolicy(
              { ...base, ...definedOnly(o) },
              `retry.${scope}[${JSON.stringify(name)}]`,
              random,
            ),
      );
    }
  }
  const policies = new Map<DescMethod, ResolvedPolicy | false>();
  return (method) => {
    let p = policies.get(method);
    if (p === undefined) {
      const path = `${method.parent.typeName}/${method.name}`;
      p = overrides.get(path) ?? overrides.get(method.parent.typeName) ?? base;
      policies.set(method, p);
    }
    return p;
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (
      v !== undefined &&
      k !== "services" &&
      k !== "methods" &&
      k !== "budget" &&
      k !== "hedging"
    ) {
      (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** resolvePolicy validates a policy (RangeError naming `where`) and resolves it. @private */
export function resolvePolicy(p: RetryPolicy, where: string, random: () => number): ResolvedPolicy {
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`${where}.${name} ${v} must be an integer >= ${min}`);
  };
  int("maxAttempts", p.maxAttempts, 1);
  int("maxAttemptsCap", p.maxAttemptsCap, 1);
  if (!(p.minAttemptMs >= 0))
    throw new RangeError(`${where}.minAttemptMs ${p.minAttemptMs} must be >= 0`);
  if (p.perAttemptTimeoutMs !== undefined && !(p.perAttemptTimeoutMs > 0)) {
    throw new RangeError(`${where}.perAttemptTimeoutMs ${p.perAttemptTimeoutMs} must be > 0`);
  }
  if (!(p.maxReplayBytes >= 0))
    throw new RangeError(`${where}.maxReplayBytes ${p.maxReplayBytes} must be >= 0`);
  for (const code of p.retryableCodes) {
    if (!Number.isInteger(code) || code < 1 || code > 16) {
      throw new RangeError(`${where}.retryableCodes: ${code} is not a gRPC code in 1..16`);
    }
  }
  return Object.freeze({
    ...p,
    attempts: Math.min(p.maxAttempts, p.maxAttemptsCap),
    backoff: createBackoff({
      initialMs: p.initialBackoffMs,
      multiplier: p.backoffMultiplier,
      maxMs: p.maxBackoffMs,
      random,
    }),
  });
}

/** ResolvedHedging is validated HedgingOptions. @private */
export interface ResolvedHedging {
  readonly methods: readonly string[] | undefined;
  readonly delayMs: number | "p95";
  readonly minDelayMs: number;
  readonly maxAttempts: number;
}

/** validateHedging checks HedgingOptions at construction. @private */
export function validateHedging(h: HedgingOptions): ResolvedHedging {
  const maxAttempts = h.maxAttempts ?? 2;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 2 || maxAttempts > 5) {
    throw new RangeError(`hedging.maxAttempts ${maxAttempts} must be an integer in 2..5`);
  }
  if (h.delayMs !== "p95" && !(typeof h.delayMs === "number" && h.delayMs >= 0)) {
    throw new RangeError(
      `hedging.delayMs ${JSON.stringify(h.delayMs)} must be a number >= 0 or "p95"`,
    );
  }
  const minDelayMs = h.minDelayMs ?? 10;
  if (!(minDelayMs >= 0)) throw new RangeError(`hedging.minDelayMs ${minDelayMs} must be >= 0`);
  return { methods: h.methods, delayMs: h.delayMs, minDelayMs, maxAttempts };
}
