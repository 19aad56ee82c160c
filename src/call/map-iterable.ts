/**
 * mapIterable maps each value of an async iterable with `f`; hand-written,
 * since an async generator costs several promises per message. return() and
 * throw() reach the source iterator, so its finally blocks run when the
 * consumer stops early.
 */
export function mapIterable<T, U>(
  iterable: AsyncIterable<T>,
  f: (value: T) => U,
): AsyncIterable<U> {
  return {
    [Symbol.asyncIterator]() {
      const it = iterable[Symbol.asyncIterator]();
      const map = (r: IteratorResult<T>): IteratorResult<U> =>
        r.done === true ? r : { done: false, value: f(r.value) };
      return {
        next: () => it.next().then(map),
        return: (value?: unknown) =>
          it.return === undefined
            ? Promise.resolve({ done: true, value: undefined })
            : it.return(value).then(map),
        throw: (e?: unknown) =>
          it.throw === undefined ? Promise.reject(e) : it.throw(e).then(map),
      };
    },
  };
}
