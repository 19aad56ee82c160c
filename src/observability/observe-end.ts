import { Code, ConnectError } from "@connectrpc/connect";

/**
 * observeEnd calls `fn` once when a response stream ends (undefined), fails
 * (the error) or is abandoned by its reader (a CANCELED error).
 * @private
 */
export function observeEnd<T>(
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
          once(new ConnectError("stream abandoned by the reader", Code.Canceled));
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
