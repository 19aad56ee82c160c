/**
 * Clock is the source of time for every decision in the mesh (deadlines,
 * backoffs, breakers, EWMA decay). Injecting it keeps decision code pure and
 * lets tests run on fake time instead of sleeping.
 */
export interface Clock {
  /** now returns a monotonic time in milliseconds (fractions allowed). */
  now(): number;
  /** setTimeout schedules `fn` after `delayMs`; returns a handle for clearTimeout. */
  setTimeout(fn: () => void, delayMs: number): ClockTimer;
  /** clearTimeout cancels a timer made by setTimeout; unknown handles are ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/** ClockTimer is an opaque timer handle. */
export type ClockTimer = unknown;

/**
 * systemClock uses `performance.now()` (monotonic, unaffected by wall-clock
 * jumps) and Node timers that do not keep the process alive.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    t.unref();
    return t;
  },
  clearTimeout(timer) {
    clearTimeout(timer as ReturnType<typeof setTimeout>);
  },
};
