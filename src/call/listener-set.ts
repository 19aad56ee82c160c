/**
 * ListenerSet fans a value out to listeners that come and go at run time (an
 * admin server attaching to a running transport). Emitting costs one size
 * check while nobody listens, so producers guard with `active` and build the
 * value only when someone will read it.
 * @private
 */
export interface ListenerSet<T> {
  /** active is true while at least one listener is attached. */
  readonly active: boolean;
  /** emit hands `value` to every listener; one that throws is skipped. */
  emit(value: T): void;
  /** listen attaches `listener` and returns the function that detaches it. */
  listen(listener: (value: T) => void): () => void;
}

/**
 * createListenerSet builds an empty ListenerSet.
 * @private
 */
export function createListenerSet<T>(): ListenerSet<T> {
  const listeners = new Set<(value: T) => void>();
  return {
    get active() {
      return listeners.size > 0;
    },
    emit(value) {
      for (const l of listeners) {
        try {
          l(value);
        } catch {
          // A watcher's bug must never reach the call that reported the value.
        }
      }
    },
    listen(listener) {
      // Wrapped, so the same function attached twice is detached once per listen().
      const own = (value: T) => listener(value);
      listeners.add(own);
      return () => {
        listeners.delete(own);
      };
    },
  };
}
