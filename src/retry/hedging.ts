import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { MeshCallOutcome } from "../call/attempt.js";
import type { MeshCall } from "../call/mesh-call.js";
import type { Clock, ClockTimer } from "../clock.js";
import { createAttemptRequest } from "./attempt-request.js";
import { canSleepAndRetry } from "./deadline-math.js";
import { retryableForHedge } from "./decide-retry.js";
import type { RetryBudget } from "./retry-budget.js";
import type { RetryEvent } from "./retry-events.js";
import type { ResolvedHedging, ResolvedPolicy } from "./retry-policy.js";

const HEDGE_SAMPLES = 128;
// Below this many samples a p95 is noise: the hedge waits minDelayMs.
const HEDGE_MIN_SAMPLES = 20;

type Next = (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>;

/** HedgerDeps are what the retry interceptor lends its hedger. */
export interface HedgerDeps {
  readonly target: string;
  readonly clock: Clock;
  readonly hedging: ResolvedHedging;
  readonly budget: RetryBudget | undefined;
  readonly emit: (event: RetryEvent) => void;
  readonly refusal?: ((req: UnaryRequest | StreamRequest) => ConnectError | undefined) | undefined;
}

/** HedgeCall is one logical call to hedge. */
export interface HedgeCall {
  readonly req: UnaryRequest;
  readonly call: MeshCall | undefined;
  readonly path: string;
  readonly policy: ResolvedPolicy;
  /** report tells the call which attempt decided it and where it ran. */
  readonly report: ((outcome: MeshCallOutcome) => void) | undefined;
}

/** Hedger runs hedged calls and keeps each method's recent latencies. */
export interface Hedger {
  /** applies says whether `req` is hedged: unary, NO_SIDE_EFFECTS, and listed (or no list). */
  applies(req: UnaryRequest | StreamRequest, path: string): req is UnaryRequest;
  /** hedge runs the call's hedges through `next` and settles with the first success. */
  hedge(next: Next, c: HedgeCall): Promise<UnaryResponse>;
}

/**
 * createHedger returns the hedging mechanism: up to `maxAttempts` copies of a
 * NO_SIDE_EFFECTS unary call, each started after the hedging delay while none
 * has answered (at once after a retryable failure); the first success wins
 * and the others are cancelled. Each hedge is its own Attempt, avoiding the
 * endpoints of the hedges before it; hedges are paid from the budget.
 */
export function createHedger(deps: HedgerDeps): Hedger {
  const { clock, hedging: h, emit } = deps;
  const latencies = new Map<string, Float64Array & { n?: number }>();

  function recordLatency(path: string, ms: number): void {
    if (h.delayMs !== "p95") return;
    let ring = latencies.get(path);
    if (ring === undefined) {
      ring = Object.assign(new Float64Array(HEDGE_SAMPLES), { n: 0 });
      latencies.set(path, ring);
    }
    ring[(ring.n ?? 0) % HEDGE_SAMPLES] = ms;
    ring.n = (ring.n ?? 0) + 1;
  }

  function hedgeDelay(path: string): number {
    if (h.delayMs !== "p95") return h.delayMs;
    const ring = latencies.get(path);
    const n = Math.min(ring?.n ?? 0, HEDGE_SAMPLES);
    if (ring === undefined || n < HEDGE_MIN_SAMPLES) return h.minDelayMs;
    const sorted = Array.from(ring.subarray(0, n)).sort((x, y) => x - y);
    return Math.max(h.minDelayMs, sorted[Math.min(n - 1, Math.floor(n * 0.95))] ?? h.minDelayMs);
  }

  return {
    applies(req, path): req is UnaryRequest {
      return (
        !req.stream &&
        req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS &&
        (h.methods === undefined || h.methods.includes(path))
      );
    },
    hedge(next, { req, call, path, policy, report }) {
      const running = new Set<{ cancel(): void }>();
      const errors: ConnectError[] = [];
      // Endpoints of hedges in flight and of failed ones: each new hedge avoids them.
      const avoid: string[] = [];
      let lastEndpoint: string | undefined;
      return new Promise<UnaryResponse>((resolve, reject) => {
        let settled = false;
        let started = 0;
        let hedgeTimer: ClockTimer | undefined;
        const onAbort = () =>
          finish(undefined, ConnectError.from(req.signal.reason, Code.Canceled), started);
        const finish = (
          res: UnaryResponse | undefined,
          error: ConnectError | undefined,
          number: number,
          endpoint: string | undefined = lastEndpoint,
        ) => {
          if (settled) return;
          settled = true;
          req.signal.removeEventListener("abort", onAbort);
          if (hedgeTimer !== undefined) clock.clearTimeout(hedgeTimer);
          for (const r of running) r.cancel();
          report?.({ attempt: Math.max(1, number), endpoint });
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
          if (running.size === 0) finish(undefined, refusal, started);
          return true;
        };
        const launch = () => {
          started++;
          const n = started;
          let endpoint: string | undefined;
          const a = createAttemptRequest(
            req,
            {
              number: n,
              callDeadlineAt: call?.deadlineAt,
              perAttemptTimeoutMs: policy.perAttemptTimeoutMs,
              avoid,
              picked: (e) => {
                endpoint = e;
                lastEndpoint = e;
                if (!avoid.includes(e)) avoid.push(e);
              },
            },
            clock,
          );
          running.add(a);
          const t0 = clock.now();
          next(a.req).then(
            (res) => {
              running.delete(a);
              a.cleanup();
              recordLatency(path, clock.now() - t0);
              finish(res as UnaryResponse, undefined, n, endpoint);
            },
            (e: unknown) => {
              running.delete(a);
              a.cleanup();
              const error = ConnectError.from(e);
              errors.push(error);
              if (
                running.size === 0 &&
                (started >= h.maxAttempts || !retryableForHedge(error, policy.retryableCodes))
              ) {
                finish(undefined, error, n, endpoint ?? lastEndpoint);
              } else if (running.size === 0) {
                scheduleHedge(0);
              }
            },
          );
          if (started < h.maxAttempts) scheduleHedge(hedgeDelay(path));
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
              // Too late for another hedge: the ones in flight decide, or the last failure.
              if (running.size === 0) finish(undefined, errors.at(-1), started);
              return;
            }
            if (deps.budget !== undefined && !deps.budget.tryWithdraw(clock.now())) {
              emit({
                type: "budget-exhausted",
                target: deps.target,
                method: path,
                code: Code.Unknown,
              });
              if (running.size === 0) finish(undefined, errors.at(-1), started);
              return;
            }
            emit({ type: "hedge", target: deps.target, method: path, attempt: started + 1 });
            launch();
          }, delayMs);
        };
        req.signal.addEventListener("abort", onAbort, { once: true });
        if (!refused()) launch();
      });
    },
  };
}
