import { Code, ConnectError, type StreamRequest, type UnaryRequest } from "@connectrpc/connect";
import { type Attempt, createAttempt, withAttempt } from "../call/attempt.js";
import { PREVIOUS_ATTEMPTS_HEADER } from "../call/headers.js";
import type { Clock, ClockTimer } from "../clock.js";
import { attemptTimeoutMs, remainingMs } from "./deadline-math.js";
import type { ReplayBuffer } from "./replay-buffer.js";

/** AttemptRequestInit says which attempt to build and how it reports back. */
export interface AttemptRequestInit {
  readonly number: number;
  /** callDeadlineAt is the logical call's deadline (MeshCall.deadlineAt). */
  readonly callDeadlineAt: number | undefined;
  readonly perAttemptTimeoutMs: number | undefined;
  /** avoid is copied into the attempt: later changes do not reach it. */
  readonly avoid: readonly string[];
  /** picked learns the endpoint the attempt step sends this attempt to. */
  readonly picked: (endpoint: string) => void;
  readonly replay?: ReplayBuffer | undefined;
}

/** AttemptRequest is one attempt's own request and its controls. */
export interface AttemptRequest {
  readonly attempt: Attempt;
  readonly req: UnaryRequest | StreamRequest;
  /** timedOut: the per-attempt timeout (not the call's deadline) ended it. */
  timedOut(): boolean;
  /** cancel ends the attempt with CANCELED (another hedge answered first). */
  cancel(): void;
  /** cleanup unlinks the attempt's signal and clears its timer; idempotent. */
  cleanup(): void;
}

/**
 * createAttemptRequest gives an attempt its own request: an immutable Attempt
 * in its own context values (attemptKey), its own signal (linked to the
 * call's, plus the per-attempt timeout), its own copy of the headers with
 * `grpc-previous-rpc-attempts`, and for client streams a replay of the
 * messages sent so far.
 */
export function createAttemptRequest(
  req: UnaryRequest | StreamRequest,
  init: AttemptRequestInit,
  clock: Clock,
): AttemptRequest {
  const now = clock.now();
  const timeoutMs = attemptTimeoutMs(
    init.perAttemptTimeoutMs,
    remainingMs(init.callDeadlineAt, now),
  );
  const attempt = createAttempt({
    number: init.number,
    deadlineAt: Number.isFinite(timeoutMs) ? now + timeoutMs : undefined,
    avoid: init.avoid,
    picked: init.picked,
  });
  const controller = new AbortController();
  let timedOut = false;
  let timer: ClockTimer | undefined;
  const onAbort = () => controller.abort(req.signal.reason);
  if (req.signal.aborted) controller.abort(req.signal.reason);
  else req.signal.addEventListener("abort", onAbort, { once: true });
  const perAttemptMs = init.perAttemptTimeoutMs;
  if (perAttemptMs !== undefined) {
    timer = clock.setTimeout(() => {
      timedOut = true;
      controller.abort(
        new ConnectError(
          `attempt ${init.number} timed out after ${perAttemptMs} ms`,
          Code.DeadlineExceeded,
        ),
      );
    }, perAttemptMs);
  }
  const header = new Headers(req.header);
  if (init.number > 1) header.set(PREVIOUS_ATTEMPTS_HEADER, String(init.number - 1));
  const contextValues = withAttempt(req.contextValues, attempt);
  const attemptReq: UnaryRequest | StreamRequest = req.stream
    ? {
        ...req,
        signal: controller.signal,
        header,
        contextValues,
        message: (init.replay?.iterable() ?? req.message) as StreamRequest["message"],
      }
    : { ...req, signal: controller.signal, header, contextValues };
  let cleaned = false;
  return {
    attempt,
    req: attemptReq,
    timedOut: () => timedOut,
    cancel: () =>
      controller.abort(new ConnectError("another hedged attempt answered first", Code.Canceled)),
    cleanup() {
      if (cleaned) return;
      cleaned = true;
      req.signal.removeEventListener("abort", onAbort);
      if (timer !== undefined) clock.clearTimeout(timer);
    },
  };
}
