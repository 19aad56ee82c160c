import { Code, ConnectError } from "@connectrpc/connect";
import { wasNotSent } from "./not-sent.js";

// OpenSSL verification failures that node reports as the error's `code`. A
// peer we cannot authenticate is, like one we cannot reach, UNAVAILABLE in
// gRPC (grpc-go: "authentication handshake failed"); Connect says INTERNAL.
const TLS_VERIFY_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_SIGNATURE_FAILURE",
  "HOSTNAME_MISMATCH",
]);

/**
 * isTlsFailureCode says whether a node error code is a TLS handshake or
 * certificate verification failure (CERT_HAS_EXPIRED, ERR_TLS_*, ERR_SSL_*,
 * a refused SPIFFE ID), which gRPC reports as UNAVAILABLE.
 */
export function isTlsFailureCode(code: string): boolean {
  return (
    TLS_VERIFY_CODES.has(code) ||
    code.startsWith("ERR_TLS") ||
    code.startsWith("ERR_SSL") ||
    code === "ERR_SPIFFE_ID_MISMATCH"
  );
}

function causeCode(e: ConnectError): string | undefined {
  const cause = e.cause as { code?: unknown } | undefined;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

// Connection losses that connect-node reports as ABORTED (ECONNRESET) or,
// when the peer resets the stream, CANCELED: in gRPC both are UNAVAILABLE
// (grpc-go: "transport is closing"), which is what retry policies expect.
const CONNECTION_LOST_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
]);

/**
 * ConnectionLostError is the cause of an UNAVAILABLE raised because the
 * connection or stream to one endpoint broke mid-call. It says something about
 * that endpoint (outlier ejection counts it), not about the method (breakers
 * ignore it).
 */
export class ConnectionLostError extends Error {
  override readonly name: string = "ConnectionLostError";
}

/**
 * isEndpointLocalFailure says whether a failed attempt failed because of its
 * endpoint's connection: it never reached a server, or the connection was lost.
 */
export function isEndpointLocalFailure(error: unknown): boolean {
  return (
    error instanceof ConnectError &&
    (error.cause instanceof ConnectionLostError || wasNotSent(error))
  );
}

/**
 * classifyTransportError gives connection-level failures their gRPC code, as
 * grpc-go does: a failed TLS handshake, and a connection or stream lost
 * mid-call (server killed, connection reset), become UNAVAILABLE naming the
 * endpoint, with the original error kept as `cause`. `callerAborted` says the
 * caller (or the deadline) ended the attempt: then CANCELED stays CANCELED.
 * Other errors pass through unchanged.
 */
export function classifyTransportError(
  error: unknown,
  address: string,
  callerAborted = false,
): ConnectError {
  const e = ConnectError.from(error);
  if (!e.isWireError && !callerAborted && (e.code === Code.Aborted || e.code === Code.Canceled)) {
    const lost = causeCode(e);
    if (
      (lost !== undefined && CONNECTION_LOST_CODES.has(lost)) ||
      /stream closed with error code|ECONNRESET|socket hang up/.test(e.rawMessage)
    ) {
      const message = `connection to ${address} lost: ${e.rawMessage}`;
      return new ConnectError(
        message,
        Code.Unavailable,
        e.metadata,
        undefined,
        new ConnectionLostError(message, { cause: e.cause }),
      );
    }
  }
  if (e.code !== Code.Internal) {
    return e;
  }
  const code = causeCode(e);
  if (code !== undefined && isTlsFailureCode(code)) {
    return new ConnectError(
      `tls handshake with ${address} failed: ${e.rawMessage} (${code})`,
      Code.Unavailable,
      e.metadata,
      undefined,
      e.cause,
    );
  }
  return e;
}
