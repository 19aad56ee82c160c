import { createContextKey } from "@connectrpc/connect";
import { abortError } from "./signals.js";

/**
 * CallAbort is an incoming call's cancellation as plain callbacks, offered
 * by a server that can (the lean gRPC handler) through `callAbortKey`. The
 * deadline interceptor races the handler on it instead of on `ctx.signal`:
 * an AbortSignal listener per call showed in profiles, and reading the
 * signal is what makes the lean handler build the call's AbortController.
 * @private
 */
export interface CallAbort {
  /** aborted tells whether the call was cancelled, timed out or shut down. */
  readonly aborted: boolean;
  /** reason is what the call's signal reports as its reason once aborted. */
  readonly reason: unknown;
  /**
   * request is the request the call handed to the interceptor chain: while
   * interceptors pass that object on, its `signal` is the call's own, and
   * `aborted` answers for it without reading it.
   */
  readonly request: object | undefined;
  /** onAbort calls `fn` once with the reason when the call aborts (never after). */
  onAbort(fn: (reason: unknown) => void): void;
  /** offAbort removes `fn` registered with onAbort. */
  offAbort(fn: (reason: unknown) => void): void;
}

/** callAbortKey is the Connect context key of the incoming call's CallAbort, when its server offers one. @private */
export const callAbortKey = createContextKey<CallAbort | undefined>(undefined, {
  description: "connect-mesh call abort",
});

/**
 * raceCallAbort is raceAbort on a CallAbort: it settles with `promise`, or
 * rejects with the abort's reason (as a ConnectError) once the call aborts;
 * the promise's later outcome is then dropped.
 * @private
 */
export function raceCallAbort<T>(promise: Promise<T>, abort: CallAbort): Promise<T> {
  if (abort.aborted) {
    promise.catch(NOOP);
    return Promise.reject(abortError(abort.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (reason: unknown) => {
      promise.catch(NOOP);
      reject(abortError(reason));
    };
    abort.onAbort(onAbort);
    promise.then(
      (value) => {
        abort.offAbort(onAbort);
        resolve(value);
      },
      (error: unknown) => {
        abort.offAbort(onAbort);
        reject(error);
      },
    );
  });
}

const NOOP = () => {};
