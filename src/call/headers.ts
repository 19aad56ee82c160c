/**
 * The protocol header names the mesh reads or writes, defined once. Values
 * are lower-case, as HTTP/2 sends them.
 */

/** GRPC_TIMEOUT_HEADER carries a request's deadline (gRPC over HTTP/2). */
export const GRPC_TIMEOUT_HEADER = "grpc-timeout";

/** RETRY_PUSHBACK_HEADER is the server's retry verdict in ms (gRFC A6). */
export const RETRY_PUSHBACK_HEADER = "grpc-retry-pushback-ms";

/** PREVIOUS_ATTEMPTS_HEADER counts the attempts before this one (gRFC A6). */
export const PREVIOUS_ATTEMPTS_HEADER = "grpc-previous-rpc-attempts";

/** IDEMPOTENCY_KEY_HEADER is the request header carrying an idempotency key. */
export const IDEMPOTENCY_KEY_HEADER = "idempotency-key";

/** IDEMPOTENCY_REPLAYED_HEADER marks a response replayed from a stored outcome. */
export const IDEMPOTENCY_REPLAYED_HEADER = "idempotency-replayed";

/** TRACEPARENT_HEADER is the W3C trace context header. */
export const TRACEPARENT_HEADER = "traceparent";

/** TRACESTATE_HEADER is the W3C vendor trace state header. */
export const TRACESTATE_HEADER = "tracestate";

/** GRPC_STATUS_HEADER carries a gRPC status code (usually a trailer). */
export const GRPC_STATUS_HEADER = "grpc-status";

/** CRITICALITY_HEADER carries a call's criticality: `critical`, `default` or `sheddable`. */
export const CRITICALITY_HEADER = "x-mesh-criticality";
/**
 * MIRROR_HEADER marks a request mirrored to a shadow (any value; the mesh
 * sends "1"). Envoy suffixes the authority with `-shadow` instead; a header
 * reaches handlers and interceptors on every protocol. Mesh servers keep the
 * idempotency records of marked calls apart from the primary's.
 */
export const MIRROR_HEADER = "x-mesh-mirror";
