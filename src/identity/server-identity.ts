import * as http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import type { Logger } from "pino";
import { BACKGROUND, type Clock, type ClockTimer } from "../clock.js";
import { connectionCertificates } from "./connection-certificates.js";
import type { IdentityMaterial } from "./identity-material.js";
import type { IdentitySource } from "./identity-source.js";
import { refusalGoawayData, refusalOfVerifyError, type TlsRefusal } from "./tls-refusal.js";

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
  /**
   * drainAfterRotationMs: once the server's identity rotates, each connection
   * established with the superseded certificate or trust bundle gets a
   * graceful GOAWAY within this time (at a random point of its second half,
   * so that clients do not all reconnect at once): its calls finish and the
   * client reconnects with a new handshake, so that replacing a certificate
   * or a trust bundle takes effect in bounded time. Default 5_000; 0 or
   * false: never (old connections keep the old certificate until they close).
   */
  readonly drainAfterRotationMs?: number | false;
}

/** SERVER_IDENTITY_DEFAULTS are the server identity's defaults. */
export const SERVER_IDENTITY_DEFAULTS = {
  drainAfterRotationMs: 5_000,
  // One log line per refusal reason and client address per minute: a
  // misconfigured client reconnecting in a loop must not flood the log.
  refusalLogIntervalMs: 60_000,
} as const;

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
  const drain = identity.drainAfterRotationMs;
  if (
    drain !== undefined &&
    drain !== false &&
    !(typeof drain === "number" && Number.isFinite(drain) && drain >= 0)
  ) {
    throw new RangeError(
      `identity.drainAfterRotationMs ${String(drain)} must be a finite number >= 0 or false`,
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
    // The certificate is checked when the connection's session starts
    // (attachServerIdentity): node's TLS server drops a connection whose
    // certificate fails verification without a TLS alert, so the client
    // would learn nothing; refused there, it learns why from the GOAWAY.
    rejectUnauthorized: false,
  };
}

/** ServerIdentityDeps are what attachServerIdentity logs and times with. @private */
export interface ServerIdentityDeps {
  readonly logger: Logger;
  readonly clock: Clock;
  /** random returns [0, 1) for the drain jitter; default Math.random. */
  readonly random?: () => number;
}

// A GOAWAY's last stream ID of 2^31-1 announces the drain without refusing
// any stream in flight (nghttp2_submit_shutdown_notice, as grpc-go does);
// the final GOAWAY follows one PING round trip later.
const SHUTDOWN_NOTICE_STREAM_ID = 2 ** 31 - 1;
// The final GOAWAY is sent after this long if the PING is never answered.
const FINAL_GOAWAY_FALLBACK_MS = 10_000;

interface Tracked {
  readonly material: IdentityMaterial;
  timer: ClockTimer | undefined;
}

function remoteAddress(socket: TLSSocket | undefined): string {
  return socket?.remoteAddress ?? "unknown";
}

/**
 * attachServerIdentity keeps a secure server on its identity source:
 * - each rotation swaps the server's secure context (new connections get
 *   the new certificate and bundle), and connections established under the
 *   old one are drained with a graceful GOAWAY within `drainAfterRotationMs`;
 * - a connection whose client certificate failed verification (or, in
 *   "require" mode, that presented none) is refused before any request is
 *   read: a GOAWAY (REFUSED_STREAM) whose debug data names the reason, and
 *   a warning in the log (rate-limited) with the reason and remote address.
 * Failed TLS handshakes are logged alike. Returns the function that detaches it.
 * @private
 */
export function attachServerIdentity(
  server: http2.Http2SecureServer,
  identity: MeshServerIdentityOptions,
  deps: ServerIdentityDeps,
): () => void {
  const { logger, clock } = deps;
  const random = deps.random ?? Math.random;
  const source = identity.source;
  const requireCertificate = (identity.clientCertificate ?? "require") === "require";
  const drainMs =
    identity.drainAfterRotationMs === false
      ? 0
      : (identity.drainAfterRotationMs ?? SERVER_IDENTITY_DEFAULTS.drainAfterRotationMs);
  const live = new Map<http2.ServerHttp2Session, Tracked>();
  const logRefusal = createRefusalLog(logger, clock);

  const isStale = (session: http2.ServerHttp2Session, t: Tracked): boolean => {
    const m = source.current;
    if (t.material !== m) {
      // A rotation that kept the leaf (a new trust bundle) also drains.
      return true;
    }
    // A handshake in flight during the rotation finished with the old context.
    const own = connectionCertificates(session)?.certificateFingerprint256;
    return own !== null && own !== undefined && own !== m.fingerprint256;
  };

  const drain = (session: http2.ServerHttp2Session) => {
    if (session.closed || session.destroyed) return;
    try {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, SHUTDOWN_NOTICE_STREAM_ID);
    } catch {
      // Closing already.
    }
    let fallback: ClockTimer | undefined;
    const final = () => {
      if (fallback !== undefined) clock.clearTimeout(fallback);
      fallback = undefined;
      if (!session.closed && !session.destroyed) session.close();
    };
    fallback = clock.setTimeout(final, FINAL_GOAWAY_FALLBACK_MS, BACKGROUND);
    try {
      if (!session.ping(() => final())) final();
    } catch {
      final();
    }
  };

  const scheduleDrain = (session: http2.ServerHttp2Session, t: Tracked) => {
    if (drainMs === 0 || t.timer !== undefined) return;
    // Spread over the second half of the window: no reconnection storm.
    const delayMs = drainMs * (0.5 + 0.5 * random());
    t.timer = clock.setTimeout(
      () => {
        t.timer = undefined;
        if (live.get(session) === t && isStale(session, t)) drain(session);
      },
      delayMs,
      BACKGROUND,
    );
  };

  const refuse = (session: http2.ServerHttp2Session, refusal: TlsRefusal, socket: TLSSocket) => {
    logRefusal(refusal, remoteAddress(socket));
    try {
      session.goaway(http2.constants.NGHTTP2_REFUSED_STREAM, 0, refusalGoawayData(refusal));
    } catch {
      // Closing already.
    }
    // Destroyed now, in the 'session' event: node reads no request on it.
    session.destroy(undefined, http2.constants.NGHTTP2_REFUSED_STREAM);
  };

  const onSession = (session: http2.ServerHttp2Session) => {
    const socket = session.socket as TLSSocket;
    if (socket.authorized !== true) {
      const cert = socket.getPeerCertificate();
      const presented = cert !== null && typeof cert === "object" && cert.raw !== undefined;
      if (presented || requireCertificate) {
        const ae = socket.authorizationError as unknown;
        const code = typeof ae === "string" ? ae : (ae as { code?: string } | null)?.code;
        refuse(session, refusalOfVerifyError(code, presented), socket);
        return;
      }
    }
    const t: Tracked = { material: source.current, timer: undefined };
    live.set(session, t);
    session.once("close", () => {
      if (t.timer !== undefined) clock.clearTimeout(t.timer);
      live.delete(session);
    });
    if (isStale(session, t)) scheduleDrain(session, t);
  };

  const onTlsClientError = (err: Error & { code?: string }, socket: TLSSocket) => {
    const code = err.code ?? "UNKNOWN";
    if (code === "ECONNRESET" || code === "ERR_SSL_WRONG_VERSION_NUMBER") {
      // A client that hung up, a port scan, a cleartext probe: not a refusal.
      logger.debug(
        { event: "tls.handshake-failed", reason: code, remote: remoteAddress(socket) },
        "tls handshake failed",
      );
      return;
    }
    logRefusal({ alert: "handshake failed", code }, remoteAddress(socket));
  };

  const off = source.onEvent((event) => {
    if (event.type !== "identity-rotated") return;
    const m = source.current;
    // setSecureContext replaces the whole context: key, cert and ca together.
    server.setSecureContext({ key: m.key, cert: m.cert, ca: m.ca });
    if (drainMs === 0) return;
    let stale = 0;
    for (const [session, t] of live) {
      if (isStale(session, t)) {
        stale++;
        scheduleDrain(session, t);
      }
    }
    if (stale > 0) {
      logger.info(
        { event: "identity.drain", connections: stale, within_ms: drainMs },
        "identity rotated: draining the connections established with the old certificate",
      );
    }
  });
  server.on("session", onSession);
  server.on("tlsClientError", onTlsClientError);
  return () => {
    off();
    server.off("session", onSession);
    server.off("tlsClientError", onTlsClientError);
    for (const t of live.values()) {
      if (t.timer !== undefined) clock.clearTimeout(t.timer);
      t.timer = undefined;
    }
  };
}

/**
 * createRefusalLog logs refused connections at warn, one line per reason
 * and client host per refusalLogIntervalMs, with the count suppressed since.
 */
function createRefusalLog(
  logger: Logger,
  clock: Clock,
): (refusal: TlsRefusal, remote: string) => void {
  const last = new Map<string, { atMs: number; suppressed: number }>();
  const intervalMs = SERVER_IDENTITY_DEFAULTS.refusalLogIntervalMs;
  return (refusal, remote) => {
    const now = clock.now();
    const key = `${refusal.code}|${remote}`;
    const seen = last.get(key);
    if (seen !== undefined && now - seen.atMs < intervalMs) {
      seen.suppressed++;
      return;
    }
    // Bounded: forget everything rather than grow with scanning clients.
    if (last.size >= 1_000) last.clear();
    last.set(key, { atMs: now, suppressed: 0 });
    logger.warn(
      {
        event: "tls.refused",
        reason: refusal.alert,
        code: refusal.code,
        remote,
        ...(seen === undefined || seen.suppressed === 0 ? {} : { suppressed: seen.suppressed }),
      },
      `tls connection refused: ${refusal.alert} (${refusal.code})`,
    );
  };
}
