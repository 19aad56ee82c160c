import { createContextKey } from "@connectrpc/connect";

/**
 * ServerCall is what the mesh server learns about an incoming call before any
 * interceptor runs: the peer and the deadline Connect parsed from the request.
 * It travels as the Connect context value `serverCallKey`.
 */
export interface ServerCall {
  /** peerAddress is the remote `host:port` of the client connection. */
  readonly peerAddress: string;
  /** timeoutMs returns the time left before the call's deadline, or undefined. */
  readonly timeoutMs: () => number | undefined;
  /**
   * signal aborts when the call is cancelled, times out, or the server shuts
   * down. A getter: on the lean gRPC path reading it builds the call's
   * AbortController, so the success path leaves it unread.
   */
  readonly signal: AbortSignal;
  /**
   * responseHeader and responseTrailer are the call's own header objects: an
   * interceptor that answers without calling the handler (an idempotent
   * replay) writes protocol headers there.
   */
  readonly responseHeader: Headers;
  readonly responseTrailer: Headers;
}

/** serverCallKey is the Connect context key of the incoming call's ServerCall. */
export const serverCallKey = createContextKey<ServerCall | undefined>(undefined, {
  description: "connect-mesh server call",
});

/** peerKey holds the peer address set when the request arrives, before the gate. */
export const peerKey = createContextKey<string>("unknown", { description: "connect-mesh peer" });
