import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  refusalGoawayData,
  refusalOfGoawayData,
  refusalOfVerifyError,
  TlsRefusalError,
  tlsAlertOf,
  tlsRefusalError,
} from "../../src/identity/tls-refusal.js";

function coded(code: string, cause?: unknown): Error {
  return Object.assign(new Error(code, { cause }), { code });
}

describe("tlsAlertOf", () => {
  it.each([
    ["ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED", "certificate required"],
    ["ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "bad certificate"],
    ["ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "unknown ca"],
    ["ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED", "certificate expired"],
    ["ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED", "certificate revoked"],
    ["ERR_SSL_TLSV1_ALERT_ACCESS_DENIED", "access denied"],
  ])("names %s as %s, also as a cause", (code, alert) => {
    expect(tlsAlertOf(coded(code))).toEqual({ alert, code });
    expect(tlsAlertOf(new Error("wrapped", { cause: coded(code) }))).toEqual({ alert, code });
  });

  it.each([
    "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION",
    "ERR_SSL_WRONG_VERSION_NUMBER",
    "CERT_HAS_EXPIRED",
    "ECONNRESET",
  ])("ignores %s (not the server refusing the client certificate)", (code) => {
    expect(tlsAlertOf(coded(code))).toBeUndefined();
  });

  it("ignores errors without codes and non-errors", () => {
    expect(tlsAlertOf(new Error("x"))).toBeUndefined();
    expect(tlsAlertOf(undefined)).toBeUndefined();
    expect(tlsAlertOf("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA")).toBeUndefined();
  });
});

describe("refusalOfVerifyError", () => {
  it.each([
    [undefined, false, "certificate required", "NO_CLIENT_CERTIFICATE"],
    ["UNABLE_TO_GET_ISSUER_CERT", false, "certificate required", "NO_CLIENT_CERTIFICATE"],
    ["CERT_HAS_EXPIRED", true, "certificate expired", "CERT_HAS_EXPIRED"],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", true, "unknown ca", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"],
    ["SELF_SIGNED_CERT_IN_CHAIN", true, "unknown ca", "SELF_SIGNED_CERT_IN_CHAIN"],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", true, "unknown ca", "DEPTH_ZERO_SELF_SIGNED_CERT"],
    ["CERT_NOT_YET_VALID", true, "bad certificate", "CERT_NOT_YET_VALID"],
    ["CERT_SIGNATURE_FAILURE", true, "bad certificate", "CERT_SIGNATURE_FAILURE"],
    [undefined, true, "bad certificate", "UNKNOWN"],
  ] as const)("%s (presented %s) is %s", (code, presented, alert, named) => {
    expect(refusalOfVerifyError(code, presented)).toEqual({ alert, code: named });
  });
});

describe("GOAWAY debug data", () => {
  it("round-trips a refusal", () => {
    const r = { alert: "certificate expired", code: "CERT_HAS_EXPIRED" };
    expect(refusalGoawayData(r).toString()).toBe(
      "client certificate refused: certificate expired (CERT_HAS_EXPIRED)",
    );
    expect(refusalOfGoawayData(refusalGoawayData(r))).toEqual(r);
  });

  it.each([
    "too_many_pings",
    "client certificate refused: <script> (X)",
    `client certificate refused: ${"a".repeat(300)} (X)`,
  ])("reads nothing from other debug data: %s", (text) => {
    expect(refusalOfGoawayData(Buffer.from(text))).toBeUndefined();
  });

  it("reads nothing without debug data", () => {
    expect(refusalOfGoawayData(undefined)).toBeUndefined();
  });
});

describe("tlsRefusalError", () => {
  const nowMs = Date.parse("2026-12-02T05:00:00Z");
  it("is UNAVAILABLE naming the endpoint, the reason and a hint; the cause keeps node's error", () => {
    const node = coded("ERR_HTTP2_SESSION_ERROR");
    const e = tlsRefusalError(
      "10.0.0.7:8443",
      { alert: "certificate expired", code: "CERT_HAS_EXPIRED" },
      {
        configured: true,
        identity: true,
        spiffeId: "spiffe://a/sa/x",
        validToMs: Date.parse("2026-12-02T04:00:00Z"),
      },
      node,
      nowMs,
    );
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toBe(
      "connection to 10.0.0.7:8443 refused by the server: certificate expired (CERT_HAS_EXPIRED); the client certificate spiffe://a/sa/x expired at 2026-12-02T04:00:00.000Z: renew it (an identity source reloads rotated files)",
    );
    expect(e.cause).toBeInstanceOf(TlsRefusalError);
    expect((e.cause as TlsRefusalError).cause).toBe(node);
  });

  it.each([
    [
      { alert: "certificate required", code: "C" },
      { configured: false, identity: false },
      "set `identity` on the transport",
    ],
    [
      { alert: "certificate required", code: "C" },
      { configured: true, identity: true },
      "received none",
    ],
    [
      { alert: "certificate expired", code: "C" },
      { configured: true, identity: false },
      "renew it, or check the clocks",
    ],
    [
      { alert: "unknown ca", code: "C" },
      { configured: true, identity: false },
      "does not include the CA that issued the client certificate",
    ],
    [
      { alert: "bad certificate", code: "C" },
      { configured: true, identity: false },
      "the server could not verify the client certificate",
    ],
  ])("hints for %o", (refusal, facts, hint) => {
    expect(tlsRefusalError("h:1", refusal, facts, undefined, nowMs).rawMessage).toContain(hint);
  });
});
