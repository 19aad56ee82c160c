import type { PeerCertificate, TLSSocket } from "node:tls";
import { ANONYMOUS_PEER, type PeerIdentity } from "../call/peer-identity.js";
import { isSpiffeId, parseSpiffeId } from "./spiffe-id.js";
import { parseSubjectAltNames } from "./subject-alt-names.js";

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return (
    typeof socket === "object" &&
    socket !== null &&
    typeof (socket as TLSSocket).getPeerCertificate === "function"
  );
}

/**
 * peerIdentityOfCertificate builds a PeerIdentity from a certificate the
 * TLS stack verified. The SPIFFE ID is the certificate's one `spiffe://`
 * URI SAN (an X.509-SVID has exactly one; with none or several the peer is
 * authenticated but has no SPIFFE ID).
 */
export function peerIdentityOfCertificate(cert: PeerCertificate): PeerIdentity {
  const sans = parseSubjectAltNames(cert.subjectaltname);
  const spiffe = sans.uris.filter((u) => u.startsWith("spiffe:"));
  const spiffeId = spiffe.length === 1 && isSpiffeId(spiffe[0]) ? spiffe[0] : undefined;
  const validTo = Date.parse(cert.valid_to);
  const cn = cert.subject?.CN;
  return Object.freeze({
    authenticated: true,
    spiffeId,
    trustDomain: spiffeId === undefined ? undefined : parseSpiffeId(spiffeId).trustDomain,
    uris: Object.freeze([...sans.uris]),
    dnsNames: Object.freeze([...sans.dnsNames]),
    subject: Array.isArray(cn) ? cn[0] : cn,
    fingerprint256: cert.fingerprint256,
    validToMs: Number.isNaN(validTo) ? undefined : validTo,
  });
}

/**
 * peerIdentityOfSocket is the identity the peer of a TLS socket proved: its
 * certificate when the trust bundle verified it, ANONYMOUS_PEER when the
 * socket is cleartext, the peer sent no certificate, or verification failed.
 */
export function peerIdentityOfSocket(socket: unknown): PeerIdentity {
  if (!isTlsSocket(socket) || socket.authorized !== true) return ANONYMOUS_PEER;
  const cert = socket.getPeerCertificate();
  if (cert === null || typeof cert !== "object" || cert.raw === undefined) return ANONYMOUS_PEER;
  return peerIdentityOfCertificate(cert);
}

/**
 * createPeerIdentityCache reads a connection's peer identity once: every
 * call on the connection (an HTTP/2 session) gets the same frozen object.
 */
export function createPeerIdentityCache(): (
  connection: { readonly socket?: unknown } | undefined,
) => PeerIdentity {
  const cache = new WeakMap<object, PeerIdentity>();
  return (connection) => {
    if (connection === undefined) return ANONYMOUS_PEER;
    let peer = cache.get(connection);
    if (peer === undefined) {
      peer = peerIdentityOfSocket(connection.socket);
      cache.set(connection, peer);
    }
    return peer;
  };
}
