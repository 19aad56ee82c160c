import type { DescMethod } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { BreakerOpenError } from "../breaker/breaker-open-error.js";
import { createBackoff } from "../call/backoff.js";
import { type MeshCall, meshCallKey, setAttemptDeadline } from "../call/mesh-call.js";
import { wasNotSent } from "../call/not-sent.js";
import { onStreamEnd, prependFirst } from "../call/stream-end.js";
import { type Clock, type ClockTimer, systemClock } from "../clock.js";
import { canSleepAndRetry, parsePushback } from "./deadline-math.js";
import { createRetryBudget, type RetryBudget, type RetryBudgetOptions } from "./retry-budget.js";

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

/** GiveUpReason says why a failed call was not retried. */
export type GiveUpReason =
  | "not-retryable"
  | "unsafe"
  | "max-attempts"
  | "budget"
  | "deadline"
  | "pushback"
  | "breaker-open"
  | "not-replayable";

/** RetryEvent is what the retry interceptor reports; logging and metrics subscribe. */
export type RetryEvent =
  | {
      readonly type: "retry";
      readonly target: string;
      readonly method: string;
      readonly attempt: number;
      readonly code: Code;
      readonly delayMs: number;
      readonly transparent: boolean;
    }
  | {
      readonly type: "give-up";
      readonly target: string;
      readonly method: string;
      readonly attempts: number;
      readonly code: Code;
      readonly reason: GiveUpReason;
    }
  | {
      readonly type: "budget-exhausted";
      readonly target: string;
      readonly method: string;
      readonly code: Code;
    }
  | {
      readonly type: "hedge";
      readonly target: string;
      readonly method: string;
      readonly attempt: number;
    };

/** RetryInterceptorDeps are what the transport lends the retry interceptor. */
export interface RetryInterceptorDeps {
  readonly target: string;
  readonly clock?: Clock;
  readonly random?: () => number;
  /** estimateLatencyMs: the fastest latency any endpoint can be expected to give. */
  readonly estimateLatencyMs?: () => number | undefined;
  readonly onEvent?: (event: RetryEvent) => void;
  /**
   * refusal answers the error that the chain below (the circuit breaker)
   * would fail the next attempt with without sending it, or undefined. A
   * refused attempt is not built at all (no signal, headers or attempt span)
   * and is handled as that error, so failing fast stays cheap.
   */
  readonly refusal?: (req: UnaryRequest | StreamRequest) => ConnectError | undefined;
}

// Idempotency levels of google.protobuf.MethodOptions.
const NO_SIDE_EFFECTS = 1;
const IDEMPOTENT = 2;
const IDEMPOTENCY_KEY_HEADER = "idempotency-key";
const PREVIOUS_ATTEMPTS_HEADER = "grpc-previous-rpc-attempts";
const PUSHBACK_HEADER = "grpc-retry-pushback-ms";
const HEDGE_SAMPLES = 128;
const HEDGE_MIN_SAMPLES = 20;

interface ResolvedPolicy extends RetryPolicy {
  readonly attempts: number;
  readonly backoff: ReturnType<typeof createBackoff>;
}

/**
 * createRetryInterceptor retries failed calls within one deadline: full-jitter
 * exponential backoff, an attempt cap, a retry budget per target, server
 * pushback (`grpc-retry-pushback-ms`), and retry safety from the method's
 * idempotency level or an idempotency key. It never sleeps past the deadline,
 * never starts an attempt with less than `minAttemptMs` (or the balancer's
 * latency estimate) left, gives each attempt its own signal and timeout, sends
 * `grpc-previous-rpc-attempts`, and asks the balancer for another endpoint.
 * Requests that provably never left the client are retried whatever the method.
 * Streams are retried only before their first response message; client streams
 * only while their messages fit the replay buffer. Options are validated here.
 */
export function createRetryInterceptor(
  options: RetryOptions,
  deps: RetryInterceptorDeps,
): Interceptor {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? Math.random;
  const emit = deps.onEvent ?? (() => {});
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
  const budget: RetryBudget | undefined =
    options.budget === false ? undefined : createRetryBudget(options.budget ?? {});
  const hedging =
    options.hedging === undefined || options.hedging === false
      ? undefined
      : validateHedging(options.hedging);
  const latencies = new Map<string, Float64Array & { n?: number }>();
  const policies = new Map<DescMethod, ResolvedPolicy | false>();

  function policyFor(method: DescMethod): ResolvedPolicy | false {
    let p = policies.get(method);
    if (p === undefined) {
      const path = `${method.parent.typeName}/${method.name}`;
      p = overrides.get(path) ?? overrides.get(method.parent.typeName) ?? base;
      policies.set(method, p);
    }
    return p;
  }

  return (next) => async (req) => {
    const policy = policyFor(req.method);
    if (policy === false || policy.attempts <= 1) {
      return next(req);
    }
    const call = req.contextValues.get(meshCallKey);
    const path = `${req.method.parent.typeName}/${req.method.name}`;
    const safe =
      policy.retryable ??
      (req.method.idempotency === NO_SIDE_EFFECTS ||
        req.method.idempotency === IDEMPOTENT ||
        req.header.has(IDEMPOTENCY_KEY_HEADER));
    budget?.recordCall(clock.now());
    if (
      hedging !== undefined &&
      !req.stream &&
      req.method.idempotency === NO_SIDE_EFFECTS &&
      (hedging.methods === undefined || hedging.methods.includes(path))
    ) {
      return hedge(next, req, call, path, policy);
    }
    const replay = req.stream ? createReplay(req, policy.maxReplayBytes) : undefined;
    for (let attempt = 1; ; attempt++) {
      if (call !== undefined) call.attempt = attempt;
      const refused = deps.refusal?.(req);
      const a = refused === undefined ? startAttempt(req, attempt, policy, replay) : undefined;
      try {
        if (a === undefined) throw refused;
        if (!req.stream) {
          const res = await next(a.req);
          a.cleanup();
          return res;
        }
        const res = (await next(a.req)) as StreamResponse;
        if (!safe) {
          // Only a failure before the response headers (a request that never
          // reached a server) could be retried: commit now.
          return { ...res, message: onStreamEnd(res.message, a.cleanup) };
        }
        // Commit to this attempt only once its first message (or its clean
        // end) arrives: an error before that is still retryable.
        const it = res.message[Symbol.asyncIterator]();
        const first = await it.next();
        return { ...res, message: onStreamEnd(prependFirst(first, it), a.cleanup) };
      } catch (e) {
        a?.cleanup();
        const error = ConnectError.from(e);
        if (req.signal.aborted) throw error;
        if (a !== undefined && call?.endpoint !== undefined) {
          call.avoidEndpoints.push(call.endpoint);
        }
        const verdict = decide(
          error,
          attempt,
          policy,
          safe,
          a?.timedOut() ?? false,
          replay?.overflowed() ?? false,
          call,
          path,
        );
        if (verdict.retry === false) {
          emit({
            type: "give-up",
            target: deps.target,
            method: path,
            attempts: attempt,
            code: error.code,
            reason: verdict.reason,
          });
          throw error;
        }
        emit({
          type: "retry",
          target: deps.target,
          method: path,
          attempt: attempt + 1,
          code: error.code,
          delayMs: verdict.delayMs,
          transparent: verdict.transparent,
        });
        await sleep(clock, verdict.delayMs, req.signal);
      }
    }
  };

  function decide(
    error: ConnectError,
    attempt: number,
    policy: ResolvedPolicy,
    safe: boolean,
    attemptTimedOut: boolean,
    overflowed: boolean,
    call: MeshCall | undefined,
    path: string,
  ):
    | { retry: true; delayMs: number; transparent: boolean }
    | { retry: false; reason: GiveUpReason } {
    if (error.cause instanceof BreakerOpenError) return { retry: false, reason: "breaker-open" };
    if (overflowed) return { retry: false, reason: "not-replayable" };
    const pushback = parsePushback(error.metadata.get(PUSHBACK_HEADER));
    if (pushback?.retry === false) return { retry: false, reason: "pushback" };
    const transparent = wasNotSent(error);
    if (!transparent) {
      const retryableCode =
        policy.retryableCodes.includes(error.code) ||
        // Overload (RESOURCE_EXHAUSTED) and a duplicate in flight (ABORTED,
        // IDEMPOTENCY_KEY_IN_USE) are worth retrying only when the server
        // says when, through pushback.
        ((error.code === Code.ResourceExhausted || error.code === Code.Aborted) &&
          pushback !== undefined) ||
        (attemptTimedOut && error.code === Code.DeadlineExceeded);
      if (!retryableCode) return { retry: false, reason: "not-retryable" };
      if (!safe) return { retry: false, reason: "unsafe" };
    }
    if (attempt >= policy.attempts) return { retry: false, reason: "max-attempts" };
    const delayMs = pushback?.retry === true ? pushback.delayMs : policy.backoff.delayMs(attempt);
    const now = clock.now();
    if (
      !canSleepAndRetry({
        now,
        deadlineAt: call?.deadlineAt,
        delayMs,
        minAttemptMs: policy.minAttemptMs,
        estimatedLatencyMs: deps.estimateLatencyMs?.(),
      })
    ) {
      return { retry: false, reason: "deadline" };
    }
    // A request that never left the client adds no load: it is not paid from the budget.
    if (!transparent && budget !== undefined && !budget.tryWithdraw(now)) {
      emit({ type: "budget-exhausted", target: deps.target, method: path, code: error.code });
      return { retry: false, reason: "budget" };
    }
    return { retry: true, delayMs, transparent };
  }

  /**
   * startAttempt gives an attempt its own request: its own signal (linked to
   * the call's, plus the per-attempt timeout), its own copy of the headers,
   * and for streams a replay of the messages sent so far.
   */
  function startAttempt(
    req: UnaryRequest | StreamRequest,
    attempt: number,
    policy: ResolvedPolicy,
    replay: Replay | undefined,
  ) {
    const controller = new AbortController();
    let timedOut = false;
    let timer: ClockTimer | undefined;
    const onAbort = () => controller.abort(req.signal.reason);
    if (req.signal.aborted) controller.abort(req.signal.reason);
    else req.signal.addEventListener("abort", onAbort, { once: true });
    if (policy.perAttemptTimeoutMs !== undefined) {
      setAttemptDeadline(controller.signal, clock.now() + policy.perAttemptTimeoutMs);
      timer = clock.setTimeout(() => {
        timedOut = true;
        controller.abort(
          new ConnectError(
            `attempt ${attempt} timed out after ${policy.perAttemptTimeoutMs} ms`,
            Code.DeadlineExceeded,
          ),
        );
      }, policy.perAttemptTimeoutMs);
    }
    const header = new Headers(req.header);
    if (attempt > 1) header.set(PREVIOUS_ATTEMPTS_HEADER, String(attempt - 1));
    const attemptReq: UnaryRequest | StreamRequest = req.stream
      ? {
          ...req,
          signal: controller.signal,
          header,
          message: (replay?.iterable() ?? req.message) as StreamRequest["message"],
        }
      : { ...req, signal: controller.signal, header };
    let cleaned = false;
    return {
      req: attemptReq,
      timedOut: () => timedOut,
      abort: () =>
        controller.abort(new ConnectError("another hedged attempt answered first", Code.Canceled)),
      cleanup() {
        if (cleaned) return;
        cleaned = true;
        req.signal.removeEventListener("abort", onAbort);
        if (timer !== undefined) clock.clearTimeout(timer);
      },
    };
  }

  /**
   * hedge runs up to `maxAttempts` copies of a NO_SIDE_EFFECTS unary call,
   * each started after the hedging delay while none has answered; the first
   * success wins and the others are cancelled. Hedges are paid from the budget.
   */
  async function hedge(
    next: (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>,
    req: UnaryRequest,
    call: MeshCall | undefined,
    path: string,
    policy: ResolvedPolicy,
  ): Promise<UnaryResponse> {
    const h = hedging as ResolvedHedging;
    const running = new Set<{ cleanup(): void; abort(): void }>();
    const errors: ConnectError[] = [];
    return new Promise<UnaryResponse>((resolve, reject) => {
      let settled = false;
      let started = 0;
      let hedgeTimer: ClockTimer | undefined;
      const onAbort = () => finish(undefined, ConnectError.from(req.signal.reason, Code.Canceled));
      const finish = (res: UnaryResponse | undefined, error: ConnectError | undefined) => {
        if (settled) return;
        settled = true;
        req.signal.removeEventListener("abort", onAbort);
        if (hedgeTimer !== undefined) clock.clearTimeout(hedgeTimer);
        for (const r of running) r.abort();
        if (res !== undefined) resolve(res);
        else reject(error);
      };
      // refused fails the call with the breaker's refusal when no hedge is in
      // flight (and launches nothing either way): an open breaker costs no
      // attempt, no hedge and no budget.
      const refused = (): boolean => {
        const refusal = deps.refusal?.(req);
        if (refusal === undefined) return false;
        errors.push(refusal);
        if (running.size === 0) finish(undefined, refusal);
        return true;
      };
      const launch = () => {
        started++;
        const n = started;
        if (call !== undefined) call.attempt = n;
        const a = startAttempt(req, n, policy, undefined);
        const controller = { cleanup: a.cleanup, abort: a.abort };
        running.add(controller);
        const t0 = clock.now();
        next(a.req).then(
          (res) => {
            running.delete(controller);
            a.cleanup();
            recordLatency(path, clock.now() - t0);
            finish(res as UnaryResponse, undefined);
          },
          (e: unknown) => {
            running.delete(controller);
            a.cleanup();
            const error = ConnectError.from(e);
            errors.push(error);
            if (call?.endpoint !== undefined) call.avoidEndpoints.push(call.endpoint);
            if (
              running.size === 0 &&
              (started >= h.maxAttempts || !retryableForHedge(error, policy))
            ) {
              finish(undefined, error);
            } else if (running.size === 0) {
              scheduleHedge(0);
            }
          },
        );
        if (call?.endpoint !== undefined) call.avoidEndpoints.push(call.endpoint);
        if (started < h.maxAttempts) scheduleHedge(hedgeDelay(path, h));
      };
      const scheduleHedge = (delayMs: number) => {
        if (hedgeTimer !== undefined) clock.clearTimeout(hedgeTimer);
        hedgeTimer = clock.setTimeout(() => {
          hedgeTimer = undefined;
          if (settled || started >= h.maxAttempts || refused()) return;
          if (
            !canSleepAndRetry({
              now: clock.now(),
              deadlineAt: call?.deadlineAt,
              delayMs: 0,
              minAttemptMs: policy.minAttemptMs,
            })
          ) {
            return;
          }
          if (budget !== undefined && !budget.tryWithdraw(clock.now())) {
            emit({
              type: "budget-exhausted",
              target: deps.target,
              method: path,
              code: Code.Unknown,
            });
            if (running.size === 0) finish(undefined, errors.at(-1));
            return;
          }
          emit({ type: "hedge", target: deps.target, method: path, attempt: started + 1 });
          launch();
        }, delayMs);
      };
      req.signal.addEventListener("abort", onAbort, { once: true });
      if (!refused()) launch();
    });
  }

  function retryableForHedge(error: ConnectError, policy: ResolvedPolicy): boolean {
    if (error.cause instanceof BreakerOpenError) return false;
    return policy.retryableCodes.includes(error.code) || wasNotSent(error);
  }

  function recordLatency(path: string, ms: number): void {
    if (hedging === undefined || hedging.delayMs !== "p95") return;
    let ring = latencies.get(path);
    if (ring === undefined) {
      ring = Object.assign(new Float64Array(HEDGE_SAMPLES), { n: 0 });
      latencies.set(path, ring);
    }
    ring[(ring.n ?? 0) % HEDGE_SAMPLES] = ms;
    ring.n = (ring.n ?? 0) + 1;
  }

  function hedgeDelay(path: string, h: ResolvedHedging): number {
    if (h.delayMs !== "p95") return h.delayMs;
    const ring = latencies.get(path);
    const n = Math.min(ring?.n ?? 0, HEDGE_SAMPLES);
    if (ring === undefined || n < HEDGE_MIN_SAMPLES) return h.minDelayMs;
    const sorted = Array.from(ring.subarray(0, n)).sort((x, y) => x - y);
    return Math.max(h.minDelayMs, sorted[Math.min(n - 1, Math.floor(n * 0.95))] ?? h.minDelayMs);
  }
}

/** Replay re-feeds a client stream's messages to each attempt. */
interface Replay {
  iterable(): AsyncIterable<unknown>;
  overflowed(): boolean;
}

/**
 * createReplay buffers the request messages of a stream as attempts pull them,
 * so a later attempt can send them again; past `maxBytes` it stops buffering
 * and the call can no longer be retried.
 */
function createReplay(req: StreamRequest, maxBytes: number): Replay {
  const source = req.message[Symbol.asyncIterator]();
  const buffered: unknown[] = [];
  let bytes = 0;
  let over = false;
  let ended = false;
  let pulled = 0;
  return {
    overflowed: () => over,
    iterable() {
      let i = 0;
      return {
        [Symbol.asyncIterator]() {
          return {
            async next(): Promise<IteratorResult<unknown>> {
              if (i < buffered.length) return { done: false, value: buffered[i++] };
              if (ended) return { done: true, value: undefined };
              if (over && i < pulled) {
                throw new ConnectError("client stream can no longer be replayed", Code.Internal);
              }
              const r = await source.next();
              if (r.done === true) {
                ended = true;
                return r;
              }
              pulled++;
              i++;
              if (!over) {
                bytes += toBinary(req.method.input, r.value as never).length;
                if (bytes > maxBytes) {
                  over = true;
                  buffered.length = 0;
                } else {
                  buffered.push(r.value);
                }
              }
              return r;
            },
            // An attempt that ends stops reading; the source stays open for
            // the next attempt (the transport closes it when the call ends).
            async return(): Promise<IteratorResult<unknown>> {
              return { done: true, value: undefined };
            },
            async throw(): Promise<IteratorResult<unknown>> {
              return { done: true, value: undefined };
            },
          };
        },
      };
    },
  };
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
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

function resolvePolicy(p: RetryPolicy, where: string, random: () => number): ResolvedPolicy {
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

interface ResolvedHedging {
  readonly methods: readonly string[] | undefined;
  readonly delayMs: number | "p95";
  readonly minDelayMs: number;
  readonly maxAttempts: number;
}

function validateHedging(h: HedgingOptions): ResolvedHedging {
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
