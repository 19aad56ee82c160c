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

/**
 * EncodedRequest is a unary request message together with the bytes it was
 * decoded from (uncompressed), as the lean gRPC handler received them.
 */
export interface EncodedRequest {
  /** message is the object the handler decoded, as first passed to the interceptors. */
  readonly message: unknown;
  /** bytes must never be written to or kept: they may share the received frame's memory. */
  readonly bytes: Uint8Array;
}

/**
 * encodedRequestKey carries a unary call's EncodedRequest from the lean gRPC
 * handler to the idempotency interceptor, which hashes those bytes instead of
 * encoding the message again when they are canonical. The interceptor uses it
 * only where no interceptor further out can change the message in place (the
 * same condition as encodedResponseKey), and only for the same object.
 */
export const encodedRequestKey = createContextKey<EncodedRequest | undefined>(undefined, {
  description: "connect-mesh encoded request",
});
