import { Code, ConnectError } from "@connectrpc/connect";

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

function causeCode(e: ConnectError): string | undefined {
  const cause = e.cause as { code?: unknown } | undefined;
  return typeof cause?.code === "string" ? cause.code : undefined;
}

/**
 * classifyTransportError gives connection-level failures their gRPC code: a
 * failed TLS handshake becomes UNAVAILABLE naming the endpoint, with the
 * original error kept as `cause`. Other errors pass through unchanged.
 */
export function classifyTransportError(error: unknown, address: string): ConnectError {
  const e = ConnectError.from(error);
  if (e.code !== Code.Internal) {
    return e;
  }
  const code = causeCode(e);
  if (
    code !== undefined &&
    (TLS_VERIFY_CODES.has(code) || code.startsWith("ERR_TLS") || code.startsWith("ERR_SSL"))
  ) {
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
