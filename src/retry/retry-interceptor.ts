import {
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
} from "@connectrpc/connect";
import { callOutcomeKey } from "../call/attempt.js";
import { IDEMPOTENCY_KEY_HEADER } from "../call/headers.js";
import { meshCallKey } from "../call/mesh-call.js";
import { abortableSleep } from "../call/signals.js";
import { onStreamEnd, prependFirst } from "../call/stream-end.js";
import { type Clock, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { createAttemptRequest } from "./attempt-request.js";
import { decideRetry, type RetryDecision } from "./decide-retry.js";
import { createHedger } from "./hedging.js";
import { createReplayBuffer } from "./replay-buffer.js";
import {
  createRetryBudget,
  RETRY_BUDGET_DEFAULTS,
  type RetryBudget,
  type RetryBudgetOptions,
} from "./retry-budget.js";
import type { RetryEvent } from "./retry-events.js";
import {
  createPolicyTable,
  isRetrySafe,
  type ResolvedHedging,
  type RetryOptions,
  validateHedging,
} from "./retry-policy.js";

export type { GiveUpReason, RetryEvent } from "./retry-events.js";
export {
  type HedgingOptions,
  RETRY_POLICY_DEFAULTS,
  type RetryOptions,
  type RetryPolicy,
} from "./retry-policy.js";

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

/**
 * createRetryInterceptor retries failed calls within one deadline: full-jitter
 * exponential backoff, an attempt cap, a retry budget per target, server
 * pushback (`grpc-retry-pushback-ms`), and retry safety from the method's
 * idempotency level or an idempotency key. It never sleeps past the deadline,
 * never starts an attempt with less than `minAttemptMs` (or the balancer's
 * latency estimate) left, gives each attempt its own Attempt, signal and
 * timeout, sends `grpc-previous-rpc-attempts`, and has later attempts avoid
 * the endpoints that failed. Requests that provably never left the client are
 * retried whatever the method. Streams are retried only before their first
 * response message; client streams only while their messages fit the replay
 * buffer. The decision is decideRetry's; this is the mechanism around it.
 * Options are validated here.
 */
export function createRetryInterceptor(
  options: RetryOptions,
  deps: RetryInterceptorDeps,
): Interceptor {
  return createRetryStage(options, deps).interceptor;
}

/**
 * RetryStage is the retry interceptor with the state a snapshot reads: the
 * budget (with its resolved options) and the hedging configuration.
 */
export interface RetryStage {
  readonly interceptor: Interceptor;
  /** budget is undefined when the budget is off. */
  readonly budget: RetryBudget | undefined;
  /** budgetOptions are the budget's resolved options; undefined when it is off. */
  readonly budgetOptions: Required<RetryBudgetOptions> | undefined;
  /** hedging is the validated hedging configuration; undefined when hedging is off. */
  readonly hedging: ResolvedHedging | undefined;
}

/** createRetryStage is createRetryInterceptor keeping hold of its budget and hedging. */
export function createRetryStage(options: RetryOptions, deps: RetryInterceptorDeps): RetryStage {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? Math.random;
  const emit = deps.onEvent ?? (() => {});
  const policyFor = createPolicyTable(options, random);
  const budget: RetryBudget | undefined =
    options.budget === false ? undefined : createRetryBudget(options.budget ?? {});
  const hedging =
    options.hedging === undefined || options.hedging === false
      ? undefined
      : validateHedging(options.hedging);
  const hedger =
    hedging === undefined
      ? undefined
      : createHedger({
          target: deps.target,
          clock,
          hedging,
          budget,
          emit,
          refusal: deps.refusal,
        });

  const interceptor: Interceptor = (next) => async (req) => {
    const policy = policyFor(req.method);
    if (policy === false || policy.attempts <= 1) {
      return next(req);
    }
    const call = req.contextValues.get(meshCallKey);
    const report = req.contextValues.get(callOutcomeKey);
    const path = `${req.method.parent.typeName}/${req.method.name}`;
    const safe = isRetrySafe(policy, req.method, req.header.has(IDEMPOTENCY_KEY_HEADER));
    budget?.recordCall(clock.now());
    if (hedger?.applies(req, path)) {
      return hedger.hedge(next, { req, call, path, policy, report });
    }
    const replay = req.stream ? createReplayBuffer(req, policy.maxReplayBytes) : undefined;
    // Endpoints of failed attempts: later attempts pass over them.
    const avoid: string[] = [];
    let lastEndpoint: string | undefined;
    for (let number = 1; ; number++) {
      let endpoint: string | undefined;
      const refused = deps.refusal?.(req);
      const a =
        refused === undefined
          ? createAttemptRequest(
              req,
              {
                number,
                callDeadlineAt: call?.deadlineAt,
                perAttemptTimeoutMs: policy.perAttemptTimeoutMs,
                avoid,
                picked: (e) => {
                  endpoint = e;
                  lastEndpoint = e;
                },
                replay,
                // One attempt at a time here (hedges are the hedger's).
                exclusive: true,
              },
              clock,
            )
          : undefined;
      try {
        if (a === undefined) throw refused;
        if (!a.req.stream) {
          const res = await next(a.req);
          a.cleanup();
          report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
          return res;
        }
        const res = (await next(a.req)) as StreamResponse;
        if (!safe) {
          // Only a failure before the response headers (a request that never
          // reached a server) could be retried: commit now.
          report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
          return { ...res, message: onStreamEnd(res.message, () => a.cleanup()) };
        }
        // Commit to this attempt only once its first message (or its clean
        // end) arrives: an error before that is still retryable.
        const it = res.message[Symbol.asyncIterator]();
        const first = await it.next();
        report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
        return { ...res, message: onStreamEnd(prependFirst(first, it), () => a.cleanup()) };
      } catch (e) {
        a?.cleanup();
        const error = ConnectError.from(e);
        if (endpoint !== undefined && !avoid.includes(endpoint)) avoid.push(endpoint);
        if (req.signal.aborted) {
          report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
          throw error;
        }
        let verdict: RetryDecision = decideRetry({
          error,
          attempt: number,
          maxAttempts: policy.attempts,
          retryableCodes: policy.retryableCodes,
          safe,
          attemptTimedOut: a?.timedOut() ?? false,
          replayOverflowed: replay?.overflowed() ?? false,
          backoffMs: policy.backoff.delayMs(number),
          now: clock.now(),
          deadlineAt: call?.deadlineAt,
          minAttemptMs: policy.minAttemptMs,
          estimatedLatencyMs: deps.estimateLatencyMs?.(),
        });
        if (
          verdict.retry &&
          verdict.paid &&
          budget !== undefined &&
          !budget.tryWithdraw(clock.now())
        ) {
          emit({ type: "budget-exhausted", target: deps.target, method: path, code: error.code });
          verdict = { retry: false, reason: "budget" };
        }
        if (!verdict.retry) {
          emit({
            type: "give-up",
            target: deps.target,
            method: path,
            attempts: number,
            code: error.code,
            reason: verdict.reason,
          });
          report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
          throw error;
        }
        emit({
          type: "retry",
          target: deps.target,
          method: path,
          attempt: number + 1,
          code: error.code,
          delayMs: verdict.delayMs,
          transparent: verdict.transparent,
        });
        try {
          await abortableSleep(clock, verdict.delayMs, req.signal);
        } catch (aborted) {
          report?.({ attempt: number, endpoint: endpoint ?? lastEndpoint });
          throw aborted;
        }
      }
    }
  };
  return {
    interceptor,
    budget,
    budgetOptions:
      options.budget === false
        ? undefined
        : Object.freeze({ ...RETRY_BUDGET_DEFAULTS, ...stripUndefined(options.budget ?? {}) }),
    hedging,
  };
}
