import { createContextKey } from "@connectrpc/connect";

/**
 * QueuedJobInfo tells a handler that it runs from a queue, and which delivery
 * this is: `ctx.values.get(queuedJobKey)` (undefined for direct calls).
 */
export interface QueuedJobInfo {
  /** queue is the queue's name. */
  readonly queue: string;
  readonly jobId: string;
  /** attempt is 1-based; see QueuedJob.attempt. */
  readonly attempt: number;
  /** enqueuedAt and expiresAt are epoch ms. */
  readonly enqueuedAt: number;
  readonly expiresAt: number;
  /** replays counts replays from the dead-letter list. */
  readonly replays: number;
}

/** queuedJobKey is the Connect context key of the QueuedJobInfo of a queued call. */
export const queuedJobKey = createContextKey<QueuedJobInfo | undefined>(undefined, {
  description: "connect-mesh queued job",
});
