import { AsyncLocalStorage } from "node:async_hooks";
import type { ContextValues } from "@connectrpc/connect";

/**
 * CallScope is what an incoming call hands to the work it causes: its deadline
 * and its cancellation. A mesh client call made inside a handler reads the
 * current scope, so it inherits the remaining deadline and is cancelled with the
 * incoming call, like grpc-js's `parent` option but automatic.
 */
export interface CallScope {
  /**
   * timeoutMs returns the time left before the incoming call's deadline, or
   * undefined when it has none. A function, not a timestamp, so that servers and
   * clients built with different clocks still agree.
   */
  timeoutMs(): number | undefined;
  /** signal aborts when the incoming call is cancelled or its deadline passes. */
  readonly signal: AbortSignal;
  /** service is the fully-qualified protobuf service name of the incoming call. */
  readonly service: string;
  /** method is the protobuf method name of the incoming call. */
  readonly method: string;
  /**
   * values are the incoming call's Connect context values: features reach
   * their per-call state through them (trace context, logger, principal).
   */
  readonly values: ContextValues;
}

const storage = new AsyncLocalStorage<CallScope>();

/** currentCallScope returns the scope of the incoming call being handled, if any. */
export function currentCallScope(): CallScope | undefined {
  return storage.getStore();
}

/** runInCallScope runs `fn` (and everything it awaits) inside `scope`. */
export function runInCallScope<T>(scope: CallScope, fn: () => T): T {
  return storage.run(scope, fn);
}

/**
 * runOutsideCallScope runs `fn` with no call scope, for work that must outlive
 * the incoming call (a detached background task must not inherit its deadline).
 */
export function runOutsideCallScope<T>(fn: () => T): T {
  return storage.exit(fn);
}

/**
 * bindIterableToScope makes every step of an async iterable run inside `scope`.
 * Async generators run their body in the context of whoever calls `next()`; the
 * server pulls streaming responses outside the interceptor, so without this a
 * streaming handler would lose its scope after its first `await`.
 */
export function bindIterableToScope<T>(
  scope: CallScope,
  iterable: AsyncIterable<T>,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = storage.run(scope, () => iterable[Symbol.asyncIterator]());
      const bound: AsyncIterator<T> = {
        next: (...args) => storage.run(scope, () => it.next(...args)),
      };
      if (it.return !== undefined) {
        bound.return = (value) =>
          storage.run(scope, () => (it.return as NonNullable<typeof it.return>)(value));
      }
      if (it.throw !== undefined) {
        bound.throw = (e) =>
          storage.run(scope, () => (it.throw as NonNullable<typeof it.throw>)(e));
      }
      return bound;
    },
  };
}
