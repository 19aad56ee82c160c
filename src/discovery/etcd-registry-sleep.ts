import { BACKGROUND, type Clock } from "../clock.js";

/**
 * sleepOnClock waits `ms` on the injected clock, ending early (never
 * rejecting) when `signal` aborts or `wake` fires: the registry's loops check
 * their own signal after every wait, so an abort is not an error there.
 */
export function sleepOnClock(
  clock: Clock,
  ms: number,
  signal: AbortSignal,
  wake?: AbortSignal,
): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", done);
      wake?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms, BACKGROUND);
    signal.addEventListener("abort", done);
    wake?.addEventListener("abort", done);
    if (signal.aborted || wake?.aborted === true) {
      done();
    }
  });
}
