import type { CallCountsSnapshot } from "./snapshot.js";

/**
 * CallCounts is the mutable tally behind a CallCountsSnapshot: plain number
 * fields bumped on the call path (no allocation, no lookup), read only when a
 * snapshot is taken.
 */
export interface CallCounts {
  started: number;
  succeeded: number;
  failed: number;
  /** lastStartedAt is NaN before the first call. */
  lastStartedAt: number;
}

/** createCallCounts returns a zeroed tally. */
export function createCallCounts(): CallCounts {
  return { started: 0, succeeded: 0, failed: 0, lastStartedAt: Number.NaN };
}

/** snapshotCallCounts freezes a tally into its JSON shape. */
export function snapshotCallCounts(c: CallCounts): CallCountsSnapshot {
  return Object.freeze({
    started: c.started,
    succeeded: c.succeeded,
    failed: c.failed,
    inFlight: Math.max(0, c.started - c.succeeded - c.failed),
    lastStartedAt: Number.isNaN(c.lastStartedAt) ? null : c.lastStartedAt,
  });
}

/** sumCallCounts adds tallies up (the latest start wins), for totals over methods. */
export function sumCallCounts(all: Iterable<CallCounts>): CallCounts {
  const sum = createCallCounts();
  for (const c of all) {
    sum.started += c.started;
    sum.succeeded += c.succeeded;
    sum.failed += c.failed;
    if (!(c.lastStartedAt <= sum.lastStartedAt)) sum.lastStartedAt = c.lastStartedAt;
  }
  return sum;
}
