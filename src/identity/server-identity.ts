import type * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import type { IdentitySource } from "./identity-source.js";

/** ClientCertificateMode says what the server asks of a client's certificate. */
export type ClientCertificateMode = "require" | "request";

/** MeshServerIdentityOptions turn on mutual TLS with a workload identity. */
export interface MeshServerIdentityOptions {
  /** source holds the server's key, certificate chain and trust bundle (createIdentitySource). */
  readonly source: IdentitySource;
  /**
   * clientCertificate: "require" (the default) refuses a handshake without a
   * client certificate the trust bundle verifies; "request" asks for one and
   * lets clients without it in as anonymous peers (an authorization policy
   * decides what they may call). A certificate that is presented but fails
   * verification is refused in both modes.
   */
  readonly clientCertificate?: ClientCertificateMode;
}

/** validateServerIdentity checks the option when the server is built. @private */
export function validateServerIdentity(identity: MeshServerIdentityOptions | undefined): void {
  if (identity === undefined) return;
  const source = identity?.source as Partial<IdentitySource> | undefined;
  if (
    source === undefined ||
    typeof source !== "object" ||
    typeof source.onEvent !== "function" ||
    source.current === undefined
  ) {
    throw new TypeError(
      "createMeshServer: identity.source must be an IdentitySource (createIdentitySource)",
    );
  }
  const mode = identity.clientCertificate;
  if (mode !== undefined && mode !== "require" && mode !== "request") {
    throw new TypeError(
      `identity.clientCertificate ${JSON.stringify(mode)} must be "require" or "request"`,
    );
  }
}

/** serverIdentityTlsOptions are the secure server's TLS options for an identity. @private */
export function serverIdentityTlsOptions(
  identity: MeshServerIdentityOptions,
): Pick<http2.SecureServerOptions, "key" | "cert" | "ca" | "requestCert" | "rejectUnauthorized"> {
  const m = identity.source.current;
  return {
    key: m.key,
    cert: m.cert,
    ca: m.ca,
    requestCert: true,
    rejectUnauthorized: (identity.clientCertificate ?? "require") === "require",
  };
}

/**
 * attachServerIdentity keeps a secure server on its identity source: each
 * rotation swaps the server's secure context (new connections get the new
 * certificate and bundle; established ones keep theirs until they close),
 * and in "request" mode a client whose presented certificate failed
 * verification is disconnected. Returns the function that detaches it.
 * @private
 */
export function attachServerIdentity(
  server: http2.Http2SecureServer,
  identity: MeshServerIdentityOptions,
): () => void {
  const off = identity.source.onEvent((event) => {
    if (event.type !== "identity-rotated") return;
    const m = identity.source.current;
    // setSecureContext replaces the whole context: key, cert and ca together.
    server.setSecureContext({ key: m.key, cert: m.cert, ca: m.ca });
  });
  if (identity.clientCertificate !== "request") return off;
  const onSecure = (socket: TLSSocket) => {
    if (socket.authorized) return;
    const cert = socket.getPeerCertificate();
    if (cert !== null && typeof cert === "object" && cert.raw !== undefined) {
      socket.destroy();
    }
  };
  server.on("secureConnection", onSecure);
  return () => {
    off();
    server.off("secureConnection", onSecure);
  };
}
