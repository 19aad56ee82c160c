/**
 * Clock is the source of time for every decision in the mesh (deadlines,
 * backoffs, breakers, EWMA decay). Injecting it keeps decision code pure and
 * lets tests run on fake time instead of sleeping.
 */
export interface Clock {
  /** now returns a monotonic time in milliseconds (fractions allowed). */
  now(): number;
  /**
   * setTimeout schedules `fn` after `delayMs` (clamped to 0..MAX_TIMER_DELAY_MS);
   * returns a handle for clearTimeout. The timer keeps the process alive unless
   * `options.unref` says it is idle background work.
   */
  setTimeout(fn: () => void, delayMs: number, options?: TimerOptions): ClockTimer;
  /** clearTimeout cancels a timer made by setTimeout; unknown handles are ignored. */
  clearTimeout(timer: ClockTimer): void;
}

/**
 * TimerOptions classify a timer. A timer that a call in flight waits on
 * (deadline, backoff, hedge delay, per-attempt timeout) must keep the process
 * alive until the call settles, as grpc-js does; only idle background timers
 * (resolver polls, lease renewals, balancer bookkeeping) may be `unref`.
 */
export interface TimerOptions {
  /** unref lets the process exit while this timer is pending; default false. */
  readonly unref?: boolean;
}

/** ClockTimer is an opaque timer handle. */
export type ClockTimer = unknown;

/**
 * MAX_TIMER_DELAY_MS is the longest delay Node's timers honour (2^31-1 ms,
 * about 24.8 days). A longer one fires after 1 ms with a
 * TimeoutOverflowWarning, which would turn a valid `grpc-timeout: 99999999H`
 * into an immediate DEADLINE_EXCEEDED.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * clampTimerDelayMs maps any delay to what a timer can honour: NaN and
 * negatives become 0, anything past MAX_TIMER_DELAY_MS (Infinity included)
 * becomes MAX_TIMER_DELAY_MS, which behaves as "effectively never".
 */
export function clampTimerDelayMs(delayMs: number): number {
  if (!(delayMs > 0)) return 0;
  return Math.min(delayMs, MAX_TIMER_DELAY_MS);
}

/**
 * systemClock uses `performance.now()` (monotonic, unaffected by wall-clock
 * jumps) and Node timers, clamped to MAX_TIMER_DELAY_MS; timers keep the
 * process alive unless made with `{ unref: true }`.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, delayMs, options) {
    const t = setTimeout(fn, clampTimerDelayMs(delayMs));
    if (options?.unref === true) t.unref();
    return t;
  },
  clearTimeout(timer) {
    clearTimeout(timer as ReturnType<typeof setTimeout>);
  },
};

/** BACKGROUND marks an idle background timer (`clock.setTimeout(fn, ms, BACKGROUND)`). */
export const BACKGROUND: TimerOptions = Object.freeze({ unref: true });

/** WakeTimer is one background timer that is only ever moved earlier (see createWakeTimer). */
export interface WakeTimer {
  /** wakeIn makes the callback run within delayMs; a wake already due sooner stands. */
  wakeIn(delayMs: number): void;
  /** cancel drops the pending wake, if any. */
  cancel(): void;
}

/**
 * createWakeTimer serves debounce, expiry and poll with one background
 * timer: each wakeIn moves it earlier or leaves it, never later, so a burst
 * of events costs one callback.
 */
export function createWakeTimer(clock: Clock, onWake: () => void): WakeTimer {
  let timer: ClockTimer | undefined;
  let dueAt = Number.POSITIVE_INFINITY;
  return {
    wakeIn(delayMs) {
      const at = clock.now() + delayMs;
      if (timer !== undefined) {
        if (dueAt <= at) return;
        clock.clearTimeout(timer);
      }
      dueAt = at;
      timer = clock.setTimeout(
        () => {
          timer = undefined;
          dueAt = Number.POSITIVE_INFINITY;
          onWake();
        },
        delayMs,
        BACKGROUND,
      );
    },
    cancel() {
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      dueAt = Number.POSITIVE_INFINITY;
    },
  };
}
