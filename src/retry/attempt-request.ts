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
  /**
   * exclusive says no other attempt of the call runs meanwhile (retries, not
   * hedges): without a per-attempt timeout the attempt then shares the call's
   * signal, and the first one the call's headers, instead of copying them
   * (an AbortController, its listener and a Headers copy per attempt were a
   * visible part of a call's cost). Later attempts always copy the headers:
   * the first one's `traceparent` and `grpc-timeout` are rewritten per attempt,
   * `grpc-previous-rpc-attempts` must not stick. Default false.
   */
  readonly exclusive?: boolean;
}

/** AttemptRequest is one attempt's own request and its controls. */
export interface AttemptRequest {
  readonly attempt: Attempt;
  readonly req: UnaryRequest | StreamRequest;
  /** timedOut: the per-attempt timeout (not the call's deadline) ended it. */
  timedOut(): boolean;
  /**
   * cancel ends the attempt with CANCELED (another hedge answered first); an
   * exclusive attempt sharing the call's signal has nothing of its own to
   * abort, and ignores it.
   */
  cancel(): void;
  /** cleanup unlinks the attempt's signal and clears its timer; idempotent. */
  cleanup(): void;
}

/**
 * createAttemptRequest gives an attempt its own request: an immutable Attempt
 * in its own context values (attemptKey), its own signal (linked to the
 * call's, plus the per-attempt timeout), its own copy of the headers with
 * `grpc-previous-rpc-attempts`, and for client streams a replay of the
 * messages sent so far. An exclusive attempt shares what it can (see
 * AttemptRequestInit.exclusive).
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
  const perAttemptMs = init.perAttemptTimeoutMs;
  let header = req.header;
  if (init.exclusive !== true || init.number > 1) {
    header = new Headers(req.header);
    if (init.number > 1) header.set(PREVIOUS_ATTEMPTS_HEADER, String(init.number - 1));
  }
  const a = new OwnAttempt(
    attempt,
    req,
    header,
    init.exclusive === true && perAttemptMs === undefined,
    init.replay,
    clock,
  );
  if (perAttemptMs !== undefined) a.arm(perAttemptMs);
  return a;
}

/**
 * OwnAttempt is an AttemptRequest. Its signal is the call's own when shared,
 * else a controller following the call's signal (this object is the
 * listener: no closure per attempt) and, once armed, aborting at the
 * per-attempt timeout.
 */
class OwnAttempt implements AttemptRequest {
  readonly req: UnaryRequest | StreamRequest;
  private readonly controller: AbortController | undefined;
  private timer: ClockTimer | undefined;
  private expired = false;
  private cleaned = false;

  constructor(
    readonly attempt: Attempt,
    private readonly parent: UnaryRequest | StreamRequest,
    header: Headers,
    shared: boolean,
    replay: ReplayBuffer | undefined,
    private readonly clock: Clock,
  ) {
    let signal = parent.signal;
    if (!shared) {
      this.controller = new AbortController();
      signal = this.controller.signal;
      if (parent.signal.aborted) this.controller.abort(parent.signal.reason);
      else parent.signal.addEventListener("abort", this, { once: true });
    }
    const contextValues = withAttempt(parent.contextValues, attempt);
    this.req = parent.stream
      ? {
          ...parent,
          signal,
          header,
          contextValues,
          message: (replay?.iterable() ?? parent.message) as StreamRequest["message"],
        }
      : { ...parent, signal, header, contextValues };
  }

  arm(ms: number): void {
    const number = this.attempt.number;
    this.timer = this.clock.setTimeout(() => {
      this.expired = true;
      this.controller?.abort(
        new ConnectError(`attempt ${number} timed out after ${ms} ms`, Code.DeadlineExceeded),
      );
    }, ms);
  }

  timedOut(): boolean {
    return this.expired;
  }

  cancel(): void {
    this.controller?.abort(
      new ConnectError("another hedged attempt answered first", Code.Canceled),
    );
  }

  /** handleEvent follows the call's signal. */
  handleEvent(): void {
    this.controller?.abort(this.parent.signal.reason);
  }

  cleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    if (this.controller !== undefined) this.parent.signal.removeEventListener("abort", this);
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
  }
}
