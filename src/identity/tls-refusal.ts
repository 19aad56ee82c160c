import { Code, ConnectError } from "@connectrpc/connect";
import { ConnectionLostError } from "../call/transport-error.js";

/**
 * TlsRefusal is why a server refused a client's TLS connection: the TLS
 * alert it sent, or the reason a mesh server gave in its GOAWAY.
 */
export interface TlsRefusal {
  /** alert is the TLS alert's name ("certificate required", "unknown ca", "certificate expired", "bad certificate"...). */
  readonly alert: string;
  /** code is node's or OpenSSL's code for it (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED, CERT_HAS_EXPIRED...). */
  readonly code: string;
}

/**
 * TlsRefusalError is the cause of an UNAVAILABLE call whose connection the
 * server refused. As a ConnectionLostError it is about that endpoint
 * (outlier detection counts it), not about the method (breakers ignore it).
 */
export class TlsRefusalError extends ConnectionLostError {
  override readonly name: string = "TlsRefusalError";
  /** code lets wasNotSent and classifiers see it: the server processed nothing. */
  readonly code = "ERR_TLS_REFUSED_BY_SERVER";
  constructor(
    message: string,
    readonly refusal: TlsRefusal,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

// The alerts a TLS server sends about a client certificate (RFC 8446 6.2),
// as node names them: ERR_SSL_<version>_ALERT_<name>.
const ALERT_CODE = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$/;
const CLIENT_CERTIFICATE_ALERTS = new Set([
  "certificate required",
  "bad certificate",
  "unknown ca",
  "certificate expired",
  "certificate revoked",
  "certificate unknown",
  "unsupported certificate",
  "access denied",
  "decrypt error",
]);

/**
 * tlsAlertOf finds a TLS alert about the client's certificate in an error
 * or its causes (node reports it as the socket's, session's or stream's
 * error); undefined when there is none.
 */
export function tlsAlertOf(error: unknown): TlsRefusal | undefined {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      const m = ALERT_CODE.exec(code);
      const alert = m?.[1]?.toLowerCase().replaceAll("_", " ");
      if (alert !== undefined && CLIENT_CERTIFICATE_ALERTS.has(alert)) return { alert, code };
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

// What a mesh server writes as GOAWAY debug data when it refuses a client
// certificate: node's TLS server cannot send the alert itself (it accepts the
// handshake in OpenSSL and checks the certificate afterwards).
const GOAWAY_PREFIX = "client certificate refused: ";
const GOAWAY_DATA = /^client certificate refused: ([a-z ]+) \(([A-Z0-9_]+)\)$/;

/** refusalOfVerifyError names node's certificate verification error (`authorizationError`) as the TLS alert it stands for. */
export function refusalOfVerifyError(code: string | undefined, presented: boolean): TlsRefusal {
  if (!presented) return { alert: "certificate required", code: "NO_CLIENT_CERTIFICATE" };
  switch (code) {
    case "CERT_HAS_EXPIRED":
      return { alert: "certificate expired", code };
    case "CERT_NOT_YET_VALID":
      return { alert: "bad certificate", code };
    case "CERT_REVOKED":
      return { alert: "certificate revoked", code };
    case "UNABLE_TO_GET_ISSUER_CERT":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "CERT_UNTRUSTED":
      return { alert: "unknown ca", code };
    default:
      return { alert: "bad certificate", code: code ?? "UNKNOWN" };
  }
}

/** refusalGoawayData is the GOAWAY debug data a mesh server sends with a refusal. */
export function refusalGoawayData(refusal: TlsRefusal): Buffer {
  return Buffer.from(`${GOAWAY_PREFIX}${refusal.alert} (${refusal.code})`);
}

/** refusalOfGoawayData reads a mesh server's refusal from GOAWAY debug data; undefined for any other. */
export function refusalOfGoawayData(data: Buffer | undefined): TlsRefusal | undefined {
  if (data === undefined || data.length > 200) return undefined;
  const m = GOAWAY_DATA.exec(data.toString("latin1"));
  if (m === null) return undefined;
  return { alert: m[1] as string, code: m[2] as string };
}

/** ClientCertificateFacts is what the client knows of the certificate it presented. */
export interface ClientCertificateFacts {
  /** configured says whether the connection presents a client certificate. */
  readonly configured: boolean;
  /** identity says it came from an identity source (`identity` on the transport). */
  readonly identity: boolean;
  readonly spiffeId?: string | undefined;
  readonly validToMs?: number | undefined;
}

function hint(r: TlsRefusal, facts: ClientCertificateFacts, nowMs: number): string {
  const which =
    facts.spiffeId === undefined
      ? "the client certificate"
      : `the client certificate ${facts.spiffeId}`;
  switch (r.alert) {
    case "certificate required":
      return facts.configured
        ? "the server requires a client certificate and received none"
        : "the server requires a client certificate: set `identity` on the transport";
    case "certificate expired":
      if (facts.validToMs !== undefined && facts.validToMs <= nowMs) {
        return `${which} expired at ${new Date(facts.validToMs).toISOString()}: renew it (an identity source reloads rotated files)`;
      }
      return `the server found ${which} expired: renew it, or check the clocks`;
    case "unknown ca":
      return `the server's trust bundle does not include the CA that issued ${which}`;
    case "certificate revoked":
      return `the server says ${which} is revoked`;
    default:
      return `the server could not verify ${which}`;
  }
}

/**
 * tlsRefusalError is the UNAVAILABLE error of a call whose connection to
 * `address` the server refused: it names what TLS said, the endpoint, and
 * what to change. The cause keeps node's error.
 */
export function tlsRefusalError(
  address: string,
  refusal: TlsRefusal,
  facts: ClientCertificateFacts,
  cause: unknown,
  nowMs: number = Date.now(),
): ConnectError {
  const message = `connection to ${address} refused by the server: ${refusal.alert} (${refusal.code}); ${hint(refusal, facts, nowMs)}`;
  return new ConnectError(
    message,
    Code.Unavailable,
    undefined,
    undefined,
    new TlsRefusalError(message, refusal, { cause }),
  );
}
