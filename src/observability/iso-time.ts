/**
 * isoTime renders epoch milliseconds as `Date.prototype.toISOString` does
 * (`2026-12-02T04:23:13.123Z`), for log lines. It formats each second once
 * and appends the milliseconds: a call line has one or two timestamps and
 * `toISOString` was a visible part of the client's per-call cost.
 */
export function isoTime(epochMs: number): string {
  // Date truncates fractions toward zero (TimeClip); so does this.
  const t = Math.trunc(epochMs);
  if (!Number.isFinite(t) || Math.abs(t) > MAX_TIME_MS) {
    // Out of Date's range: let it throw its usual RangeError.
    return new Date(epochMs).toISOString();
  }
  const second = Math.floor(t / 1000);
  if (second !== cachedSecond) {
    // "…T04:23:13.000Z" without "000Z"; a year beyond 9999 (`+010000-…`) keeps its own width.
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, -4);
    cachedSecond = second;
  }
  const ms = t - second * 1000;
  return `${cachedPrefix}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
}

// ECMAScript's time value range: ±8.64e15 ms around the epoch.
const MAX_TIME_MS = 8.64e15;

let cachedSecond = Number.NaN;
let cachedPrefix = "";
