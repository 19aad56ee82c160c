// HOOK: queued calls through a worker (src/queue, being built).
//
// When src/queue/index.ts exports createQueuedClient, the demo should enqueue
// a few CreateOrder calls (a queued client on a memory queue) and run a queue
// worker that makes them through the same mesh transport, so they get the
// same retries, breakers and idempotency keys, and their traces continue
// from the enqueue. Until then startQueuedCalls resolves undefined and the
// demo says that it skipped this part.
import type { MeshTransport } from "../../src/index.js";
import type { RunStats } from "./run-stats.js";

/** QueuedCallsRun is the queued part of the demo while it runs. */
export interface QueuedCallsRun {
  /** description says what runs, for the demo's header. */
  readonly description: string;
  /** stop stops enqueuing, lets the worker finish what is queued, and stops it. */
  stop(): Promise<void>;
  /** summary lines for the end of the demo. */
  summary(): string[];
  /** ok is false when the queued calls did not all complete. */
  ok(): boolean;
}

/** QueuedCallsOptions are what the queued part needs from the demo. */
export interface QueuedCallsOptions {
  readonly transport: MeshTransport;
  readonly logFile: string;
  readonly stats: RunStats;
  readonly signal: AbortSignal;
}

const QUEUE_MODULE = "../../src/queue/index.js";

/** startQueuedCalls starts the queued calls if src/queue is there; undefined when it is not. */
export async function startQueuedCalls(
  _options: QueuedCallsOptions,
): Promise<QueuedCallsRun | undefined> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(QUEUE_MODULE)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof mod.createQueuedClient !== "function") return undefined;
  // Not integrated yet: see the note at the top of this file.
  return undefined;
}
