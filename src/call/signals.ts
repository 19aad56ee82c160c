import { Code, ConnectError } from "@connectrpc/connect";
import { BACKGROUND, type Clock, type ClockTimer } from "../clock.js";

/**
 * abortReason is the error a call reports once `signal` has aborted: the
 * signal's reason as a ConnectError (a bare reason becomes CANCELED).
 */
export function abortReason(signal: AbortSignal): ConnectError {
  return abortError(signal.reason);
}

/**
 * abortError is the error a call reports for an abort with `reason`: the
 * reason as a ConnectError (a bare reason becomes CANCELED, none "call was
 * cancelled").
 */
export function abortError(reason: unknown): ConnectError {
  return ConnectError.from(
    reason ?? new ConnectError("call was cancelled", Code.Canceled),
    Code.Canceled,
  );
}

/**
 * abortableSleep waits `ms` on `clock` and resolves, or rejects with
 * abortReason(signal) as soon as `signal` aborts (at once if it already has).
 * The timer keeps the process alive: a call waits on it.
 */
export function abortableSleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(abortReason(signal));
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * raceAbort settles with `promise`, or rejects with abortReason(signal) once
 * the signal aborts; the promise's later outcome is then dropped.
 */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

const NOOP = () => {};

/** LinkedSignal is a signal derived from others, and the cleanup that unlinks it. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** cleanup removes the listeners (and the timer); idempotent. */
  cleanup(): void;
}

/**
 * linkInto aborts `controller` with the reason of the first signal that
 * aborts; returns a cleanup that removes the listeners.
 */
export function linkInto(
  controller: AbortController,
  signals: readonly (AbortSignal | undefined)[],
): () => void {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  const onAbort = (event: Event) => {
    controller.abort((event.target as AbortSignal).reason);
    cleanup();
  };
  const cleanup = () => {
    for (const s of present) s.removeEventListener("abort", onAbort);
  };
  for (const s of present) {
    if (s.aborted) {
      controller.abort(s.reason);
      cleanup();
      return cleanup;
    }
    s.addEventListener("abort", onAbort);
  }
  return cleanup;
}

/**
 * linkSignals aborts one signal when any input aborts. A single input is
 * returned as is: no controller, no listener.
 */
export function linkSignals(signals: readonly (AbortSignal | undefined)[]): LinkedSignal {
  const present = signals.filter((s): s is AbortSignal => s !== undefined);
  if (present.length === 1 && present[0] !== undefined) {
    return { signal: present[0], cleanup: NOOP };
  }
  const controller = new AbortController();
  return { signal: controller.signal, cleanup: linkInto(controller, present) };
}

/**
 * deadlineSignal is a call's own signal: it aborts when any input aborts, or
 * with DEADLINE_EXCEEDED after `timeoutMs` (the clock clamps an over-long
 * one to "effectively never"). Unlike Connect's, it is not aborted when the
 * call succeeds: an abort allocates a DOMException, which showed in profiles.
 * Without a timeout a single input is returned as is (linkSignals): an
 * AbortController and its listener were a visible part of a call's cost.
 */
export function deadlineSignal(
  clock: Clock,
  timeoutMs: number | undefined,
  signals: readonly (AbortSignal | undefined)[],
): LinkedSignal {
  if (timeoutMs === undefined) return linkSignals(signals);
  const controller = new AbortController();
  const unlink = linkInto(controller, signals);
  let timer: ClockTimer | undefined;
  if (timeoutMs !== undefined && !controller.signal.aborted) {
    const onTimeout = () =>
      controller.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
    if (timeoutMs <= 0) onTimeout();
    else timer = clock.setTimeout(onTimeout, timeoutMs);
  }
  return {
    signal: controller.signal,
    cleanup() {
      unlink();
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}

/**
 * backgroundSleep waits `ms` on the clock as idle background work (the timer
 * does not keep the process alive), ending early, never rejecting, when
 * `signal` aborts or `wake` fires: background loops (registrations, etcd
 * leases and watches) check their own signal after every wait, so an abort
 * is not an error there. Calls use abortableSleep, which rejects.
 */
export function backgroundSleep(
  clock: Clock,
  ms: number,
  signal: AbortSignal,
  wake?: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      wake?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms, BACKGROUND);
    signal.addEventListener("abort", done);
    wake?.addEventListener("abort", done);
    if (signal.aborted || wake?.aborted === true) {
      done();
    }
  });
}
