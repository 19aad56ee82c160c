/**
 * createEventEmitter fans one typed event out to its listeners, each guarded:
 * a listener that throws is skipped, so a bug in logging, metrics or a user's
 * `onEvent` can never replace a call's error or stop the mesh's own work.
 * Absent listeners are ignored.
 */
export function createEventEmitter<E>(
  ...listeners: readonly (((event: E) => void) | undefined)[]
): (event: E) => void {
  const present = listeners.filter((l): l is (event: E) => void => l !== undefined);
  return (event) => {
    for (const listener of present) {
      try {
        listener(event);
      } catch {
        // Nowhere safe to report it: the logger may be the listener that threw.
      }
    }
  };
}
