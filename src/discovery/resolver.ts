import type { EndpointSet } from "./endpoint.js";

/**
 * ResolverEvent is what a resolver tells its listener besides snapshots:
 * records it skipped and errors it recovered from. Logging and metrics
 * subscribe to these; the resolver itself never logs.
 */
export type ResolverEvent =
  | {
      readonly type: "bad-record";
      readonly target: string;
      readonly record: string;
      readonly reason: string;
    }
  | { readonly type: "error"; readonly target: string; readonly error: unknown }
  | { readonly type: "stale"; readonly target: string; readonly sinceMs: number };

/** ResolverListener receives snapshots and events from a resolver. */
export interface ResolverListener {
  /** onUpdate receives a whole new snapshot; it replaces the previous one. */
  onUpdate(set: EndpointSet): void;
  /** onEvent receives warnings and errors; optional. */
  onEvent?(event: ResolverEvent): void;
}

/**
 * Resolver turns a target into endpoint-set snapshots pushed to a listener.
 * Implement it to plug in your own discovery (Kubernetes EndpointSlices,
 * Consul). A resolver must never push an empty set because its source failed:
 * it keeps the last-known endpoints and reports the outage as an event.
 */
export interface Resolver {
  /** start begins resolution; snapshots flow to the listener until close(). */
  start(listener: ResolverListener): void;
  /** resolveNow asks for an early re-resolution (for example after failures). */
  resolveNow?(): void;
  /** close stops resolution and releases timers, sockets and watches. */
  close(): Promise<void> | void;
}
