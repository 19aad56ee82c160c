import { Code, ConnectError } from "@connectrpc/connect";

/**
 * onStreamEnd calls `fn` exactly once when a response stream ends (error
 * undefined), fails (the error), or is abandoned by its reader (a CANCELED
 * error). Per-call bookkeeping (load, breakers, listeners) hangs off it.
 */
export function onStreamEnd<T>(
  iterable: AsyncIterable<T>,
  fn: (error: unknown) => void,
): AsyncIterable<T> {
  let called = false;
  const once = (error: unknown) => {
    if (!called) {
      called = true;
      fn(error);
    }
  };
  return {
    [Symbol.asyncIterator]() {
      const it = iterable[Symbol.asyncIterator]();
      return {
        async next() {
          try {
            const r = await it.next();
            if (r.done === true) once(undefined);
            return r;
          } catch (e) {
            once(e);
            throw e;
          }
        },
        async return(value?: unknown) {
          once(new ConnectError("stream abandoned by the caller", Code.Canceled));
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
        async throw(e?: unknown) {
          once(e);
          if (it.throw !== undefined) {
            return it.throw(e);
          }
          throw e;
        },
      };
    },
  };
}

/**
 * prependFirst returns an iterable that yields an already-read first result,
 * then the rest of `it`. The retry interceptor reads a stream's first message
 * before committing to an attempt.
 */
export function prependFirst<T>(first: IteratorResult<T>, it: AsyncIterator<T>): AsyncIterable<T> {
  let pending: IteratorResult<T> | undefined = first;
  return {
    [Symbol.asyncIterator]() {
      return {
        next() {
          if (pending !== undefined) {
            const r = pending;
            pending = undefined;
            return Promise.resolve(r);
          }
          return it.next();
        },
        async return(value?: unknown) {
          pending = undefined;
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
      };
    },
  };
}

/** mapStreamErrors passes every error a stream throws through `map` (to classify it). */
export function mapStreamErrors<T>(
  iterable: AsyncIterable<T>,
  map: (error: unknown) => unknown,
): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = iterable[Symbol.asyncIterator]();
      return {
        async next() {
          try {
            return await it.next();
          } catch (e) {
            throw map(e);
          }
        },
        async return(value?: unknown) {
          return (await it.return?.(value)) ?? { done: true, value: undefined };
        },
      };
    },
  };
}
