import { createContextKey } from "@connectrpc/connect";

/**
 * EncodedResponse is a unary response message together with its binary
 * encoding (protobuf-es `toBinary` with default options), made by a server
 * interceptor that had to encode the message anyway: the idempotency
 * interceptor stores those bytes for replay.
 */
export interface EncodedResponse {
  /** message is the object the interceptor returned as `UnaryResponse.message`. */
  readonly message: unknown;
  /** bytes must never be written to: a store may keep them. */
  readonly bytes: Uint8Array;
}

/**
 * encodedResponseKey carries a call's EncodedResponse from the interceptor
 * that made it to the lean gRPC handler, which then sends those bytes instead
 * of encoding the message a second time, provided the message reaching it is
 * the same object. It is set only when no interceptor further out can change
 * the message (no user interceptors): a change made in place would not show
 * in the bytes.
 */
export const encodedResponseKey = createContextKey<EncodedResponse | undefined>(undefined, {
  description: "connect-mesh encoded response",
});
