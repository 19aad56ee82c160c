import type { TLSSocket } from "node:tls";
import { peerIdentityOfSocket } from "./peer-identity-of.js";

/** ConnectionCertificates are the certificates a TLS connection was established with. */
export interface ConnectionCertificates {
  /** certificateFingerprint256 is the server's own certificate on this connection; null if unknown. */
  readonly certificateFingerprint256: string | null;
  /** peerFingerprint256 is the verified client certificate's fingerprint; null when none. */
  readonly peerFingerprint256: string | null;
  /** peerSpiffeId is the verified client's SPIFFE ID; null when none. */
  readonly peerSpiffeId: string | null;
}

// A connection's certificates never change: read them once per session.
const cache = new WeakMap<object, ConnectionCertificates>();

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return (
    typeof socket === "object" &&
    socket !== null &&
    typeof (socket as TLSSocket).getCertificate === "function"
  );
}

/**
 * connectionCertificates reads what a server-side TLS connection (an HTTP/2
 * session) was established with; undefined for a cleartext one.
 * @private
 */
export function connectionCertificates(connection: {
  readonly socket?: unknown;
}): ConnectionCertificates | undefined {
  let c = cache.get(connection);
  if (c !== undefined) return c;
  const socket = connection.socket;
  if (!isTlsSocket(socket)) return undefined;
  const own = socket.getCertificate() as { fingerprint256?: unknown } | null;
  const peer = peerIdentityOfSocket(socket);
  c = Object.freeze({
    certificateFingerprint256: typeof own?.fingerprint256 === "string" ? own.fingerprint256 : null,
    peerFingerprint256: peer.fingerprint256 ?? null,
    peerSpiffeId: peer.spiffeId ?? null,
  });
  cache.set(connection, c);
  return c;
}
