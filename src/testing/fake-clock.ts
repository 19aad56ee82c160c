import type { Clock, ClockTimer } from "../clock.js";

/**
 * FakeClock is a Clock whose time moves only when a test says so. Timers fire
 * synchronously inside `advance`, in due-time order (ties in creation order).
 */
export interface FakeClock extends Clock {
  /** advance moves time forward by `ms` (>= 0), firing timers that come due. */
  advance(ms: number): void;
  /** set moves time to `at` (never backwards), firing timers that come due. */
  set(at: number): void;
  /** pendingTimers is the number of scheduled, unfired timers. */
  readonly pendingTimers: number;
}

interface Timer {
  readonly id: number;
  readonly at: number;
  readonly fn: () => void;
}

/** createFakeClock builds a fake clock starting at `startMs` (default 0). */
export function createFakeClock(startMs = 0): FakeClock {
  let now = startMs;
  let nextId = 1;
  const timers = new Map<number, Timer>();

  const set = (at: number): void => {
    if (!(at >= now)) throw new RangeError(`time ${at} must be >= now ${now}`);
    for (;;) {
      let due: Timer | undefined;
      for (const t of timers.values()) {
        if (t.at <= at && (due === undefined || t.at < due.at)) due = t;
      }
      if (due === undefined) break;
      timers.delete(due.id);
      now = due.at;
      due.fn();
    }
    now = at;
  };

  return {
    now: () => now,
    setTimeout(fn, delayMs, _options) {
      const id = nextId++;
      timers.set(id, { id, at: now + Math.max(0, delayMs), fn });
      return id;
    },
    clearTimeout(timer: ClockTimer) {
      if (typeof timer === "number") timers.delete(timer);
    },
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError(`advance ${ms} must be >= 0`);
      set(now + ms);
    },
    set,
    get pendingTimers() {
      return timers.size;
    },
  };
}
