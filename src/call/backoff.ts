import { stripUndefined } from "../strip-undefined.js";

/**
 * Backoff says how long to wait before a retry. It is immutable: the attempt
 * number is passed in, so one backoff serves every call concurrently.
 */
export interface Backoff {
  /**
   * delayMs returns the wait before retry number `attempt` (1 = first retry):
   * `random() * min(maxMs, initialMs * multiplier ** (attempt - 1))`.
   * Attempts below 1 are treated as 1.
   */
  delayMs(attempt: number): number;
}

/**
 * BackoffOptions configures createBackoff. Defaults (BACKOFF_DEFAULTS):
 * initialMs 100, multiplier 2, maxMs 5_000, random Math.random.
 */
export interface BackoffOptions {
  /** initialMs caps the first retry's delay; >= 0. */
  readonly initialMs?: number;
  /** multiplier grows the cap per attempt; >= 1. */
  readonly multiplier?: number;
  /** maxMs caps every delay; >= initialMs. */
  readonly maxMs?: number;
  /** random returns a number in [0, 1); inject a seeded one in tests. */
  readonly random?: () => number;
}

/** BACKOFF_DEFAULTS are the defaults documented on BackoffOptions (gRFC A6 uses the same shape). */
export const BACKOFF_DEFAULTS: Required<BackoffOptions> = Object.freeze({
  initialMs: 100,
  multiplier: 2,
  // Beyond ~5 s a retry rarely fits in an RPC deadline; fail instead.
  maxMs: 5_000,
  random: Math.random,
});

/**
 * createBackoff builds AWS-style "full jitter" exponential backoff: the delay
 * is uniform in [0, cap). Full jitter spreads a herd of clients that failed
 * together better than equal or decorrelated jitter, at the same total work.
 */
export function createBackoff(options: BackoffOptions = {}): Backoff {
  const { initialMs, multiplier, maxMs, random } = {
    ...BACKOFF_DEFAULTS,
    ...stripUndefined(options),
  };
  if (!(initialMs >= 0) || !Number.isFinite(initialMs)) {
    throw new RangeError(`initialMs ${initialMs} must be a finite number >= 0`);
  }
  if (!(multiplier >= 1) || !Number.isFinite(multiplier)) {
    throw new RangeError(`multiplier ${multiplier} must be a finite number >= 1`);
  }
  if (!(maxMs >= initialMs) || !Number.isFinite(maxMs)) {
    throw new RangeError(`maxMs ${maxMs} must be a finite number >= initialMs ${initialMs}`);
  }
  if (typeof random !== "function") {
    throw new RangeError(`random ${String(random)} must be a function`);
  }
  return Object.freeze({
    delayMs(attempt: number): number {
      const n = attempt >= 1 ? Math.floor(attempt) : 1;
      // initialMs * multiplier ** k overflows to Infinity for large k, and
      // 0 * Infinity is NaN: cap the growth before multiplying.
      const growth = multiplier ** (n - 1);
      const cap = initialMs === 0 ? 0 : Math.min(maxMs, initialMs * growth);
      // Clamp a misbehaving random() so the delay stays within [0, cap].
      const r = random();
      return cap * (r > 0 ? Math.min(r, 1) : 0);
    },
  });
}
