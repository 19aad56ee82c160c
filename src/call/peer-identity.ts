import { createContextKey } from "@connectrpc/connect";

/**
 * PeerIdentity is who is on the other end of a connection, as its verified
 * TLS certificate says. With mTLS on, the server learns the client's identity
 * and the client the server's; without TLS (or without a client certificate)
 * the peer is anonymous (`authenticated: false`).
 *
 * This is the shared contract of the identity, authorization, idempotency and
 * observability layers: it lives on the call floor so none of them imports
 * another.
 */
export interface PeerIdentity {
  /** authenticated is true when the peer presented a certificate the trust bundle verified. */
  readonly authenticated: boolean;
  /** spiffeId is the certificate's `spiffe://` URI SAN, e.g. `spiffe://a/ns/default/sa/orders`. */
  readonly spiffeId?: string | undefined;
  /** trustDomain is the SPIFFE ID's host part, e.g. `a`. */
  readonly trustDomain?: string | undefined;
  /** uris lists every URI SAN of the certificate (the SPIFFE ID among them). */
  readonly uris: readonly string[];
  /** dnsNames lists the certificate's DNS SANs. */
  readonly dnsNames: readonly string[];
  /** subject is the certificate subject's common name, when it has one. */
  readonly subject?: string | undefined;
  /** fingerprint256 is the leaf certificate's SHA-256 fingerprint (hex with colons). */
  readonly fingerprint256?: string | undefined;
  /** validTo is when the leaf certificate expires (ms since the epoch). */
  readonly validToMs?: number | undefined;
}

/** ANONYMOUS_PEER is the identity of a peer that presented no verified certificate. */
export const ANONYMOUS_PEER: PeerIdentity = Object.freeze({
  authenticated: false,
  uris: Object.freeze([]) as readonly string[],
  dnsNames: Object.freeze([]) as readonly string[],
});

/**
 * peerIdentityKey is the Connect context key of the calling peer's identity on
 * the server (set before any interceptor runs).
 */
export const peerIdentityKey = createContextKey<PeerIdentity>(ANONYMOUS_PEER, {
  description: "connect-mesh peer identity",
});

/**
 * principalOf names a peer for authorization and idempotency-key scoping:
 * its SPIFFE ID when it has one, otherwise undefined.
 */
export function principalOf(peer: PeerIdentity): string | undefined {
  return peer.authenticated ? peer.spiffeId : undefined;
}
