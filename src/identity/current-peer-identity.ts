import { currentCallScope } from "../call/call-scope.js";
import { ANONYMOUS_PEER, type PeerIdentity, peerIdentityKey } from "../call/peer-identity.js";

/**
 * currentPeerIdentity returns the verified identity of the peer calling the
 * handler being run (mutual TLS), ANONYMOUS_PEER without one or outside a
 * call. Handlers can also read `ctx.values.get(peerIdentityKey)`.
 */
export function currentPeerIdentity(): PeerIdentity {
  return currentCallScope()?.values.get(peerIdentityKey) ?? ANONYMOUS_PEER;
}
