/**
 * AbortWatcher is what an abort fan-out calls: an object, so a watcher needs
 * no closure (the same shape as an EventTarget listener object).
 */
export interface AbortWatcher {
  handleEvent(): void;
}

/**
 * AbortFanout gives a long-lived signal that many concurrent calls watch
 * (a transport's "closed" signal) one real listener and a Set of watchers.
 * Node's EventTarget walks its whole listener list on every add and remove
 * (a duplicate check), so 64 calls in flight on one signal made each call's
 * watch and unwatch walk 64 listeners; a Set add and delete is constant.
 */
export interface AbortFanout {
  readonly signal: AbortSignal;
  add(watcher: AbortWatcher): void;
  delete(watcher: AbortWatcher): void;
}

const fanouts = new WeakMap<AbortSignal, AbortFanout>();

/**
 * createAbortFanout registers `signal` as a fanned-out one: watchAbort on it
 * adds to a Set instead of adding an EventTarget listener. When the signal
 * aborts, the watchers present then are called in the order they were added.
 * Callers check `signal.aborted` before watching (as client calls do), so
 * nothing is added during the abort.
 */
export function createAbortFanout(signal: AbortSignal): AbortFanout {
  const existing = fanouts.get(signal);
  if (existing !== undefined) return existing;
  const watchers = new Set<AbortWatcher>();
  const fanout: AbortFanout = {
    signal,
    add: (w) => {
      watchers.add(w);
    },
    delete: (w) => {
      watchers.delete(w);
    },
  };
  signal.addEventListener(
    "abort",
    () => {
      // As with EventTarget listeners, a watcher removed by an earlier one
      // during the abort is not called (the Set's iteration skips deletions).
      for (const w of watchers) w.handleEvent();
      watchers.clear();
    },
    { once: true },
  );
  fanouts.set(signal, fanout);
  return fanout;
}

/**
 * watchAbort calls `watcher.handleEvent()` when `signal` aborts: through the
 * signal's fan-out when it has one, else as an ordinary listener. The caller
 * checks `signal.aborted` first; unwatchAbort undoes it.
 */
export function watchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  const fanout = fanouts.get(signal);
  if (fanout !== undefined) fanout.add(watcher);
  else signal.addEventListener("abort", watcher);
}

/** unwatchAbort removes a watcher added by watchAbort. */
export function unwatchAbort(signal: AbortSignal, watcher: AbortWatcher): void {
  const fanout = fanouts.get(signal);
  if (fanout !== undefined) fanout.delete(watcher);
  else signal.removeEventListener("abort", watcher);
}
