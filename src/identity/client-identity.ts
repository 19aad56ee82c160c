import type * as http2 from "node:http2";
import type { PeerCertificate } from "node:tls";
import type { IdentitySource } from "./identity-source.js";
import { peerIdentityOfCertificate } from "./peer-identity-of.js";
import {
  createServerIdentityMatcher,
  type ServerIdentityMatcher,
} from "./server-identity-matcher.js";

/**
 * ServerIdentityMismatchError is why a client refused a server whose
 * certificate verified but named a SPIFFE ID the client does not accept.
 */
export class ServerIdentityMismatchError extends Error {
  override readonly name = "ServerIdentityMismatchError";
  /** code lets transport errors name it, as node's TLS errors have one. */
  readonly code = "ERR_SPIFFE_ID_MISMATCH";
  constructor(
    message: string,
    /** presented is the server's SPIFFE ID, if its certificate had one. */
    readonly presented: string | undefined,
  ) {
    super(message);
  }
}

/** ClientIdentity makes the TLS options of each new connection from the current identity. @private */
export interface ClientIdentity {
  readonly source: IdentitySource;
  /** tlsOptions are the options of a new connection: the current certificate and bundle. */
  tlsOptions(base: http2.SecureClientSessionOptions | undefined): http2.SecureClientSessionOptions;
}

/**
 * validateClientIdentity checks the client options at construction (a
 * TypeError names the bad value) and returns the identity, if any.
 * @private
 */
export function createClientIdentity(
  source: IdentitySource | undefined,
  serverIdentities: readonly string[] | undefined,
): ClientIdentity | undefined {
  if (source === undefined) {
    if (serverIdentities !== undefined) {
      throw new TypeError(
        "serverIdentities needs identity (the client's trust bundle and certificate)",
      );
    }
    return undefined;
  }
  const s = source as Partial<IdentitySource>;
  if (typeof s !== "object" || typeof s.onEvent !== "function" || s.current === undefined) {
    throw new TypeError("identity must be an IdentitySource (createIdentitySource)");
  }
  const matcher: ServerIdentityMatcher = createServerIdentityMatcher(
    serverIdentities,
    () => source.current.trustDomain,
  );
  // Replaces the host name check: the chain was verified against the
  // bundle already; what the client pins is the SPIFFE ID.
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    const presented = peerIdentityOfCertificate(cert).spiffeId;
    const problem = matcher(presented);
    return problem === undefined ? undefined : new ServerIdentityMismatchError(problem, presented);
  };
  return {
    source,
    tlsOptions(base) {
      const m = source.current;
      return {
        ...base,
        key: m.key,
        cert: m.cert,
        ca: m.ca,
        rejectUnauthorized: true,
        checkServerIdentity,
      };
    },
  };
}
