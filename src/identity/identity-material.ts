import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { parseSpiffeId, spiffeIdProblem } from "./spiffe-id.js";
import { parseSubjectAltNames } from "./subject-alt-names.js";

/** IdentityPem is a workload identity as PEM text: what files or a secret store hold. */
export interface IdentityPem {
  /** key is the leaf certificate's private key (PEM). */
  readonly key: string | Buffer;
  /** cert is the certificate chain (PEM): the leaf first, then any intermediates. */
  readonly cert: string | Buffer;
  /** ca is the trust bundle (PEM): the root certificates peers must chain to. */
  readonly ca: string | Buffer;
}

/**
 * IdentityMaterial is a validated workload identity: the key matches the
 * leaf, every certificate is in its validity period, the chain ends at a
 * root of the trust bundle, and the leaf names exactly one SPIFFE ID.
 */
export interface IdentityMaterial {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
  /** spiffeId is the leaf's `spiffe://` URI SAN. */
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** fingerprint256 is the leaf's SHA-256 fingerprint (hex with colons), as node's TLS reports it. */
  readonly fingerprint256: string;
  /** validFromMs and validToMs bound the leaf's validity (ms since the epoch). */
  readonly validFromMs: number;
  readonly validToMs: number;
}

/** IdentityMaterialError says why a key, chain and bundle are not a usable identity. */
export class IdentityMaterialError extends Error {
  override readonly name = "IdentityMaterialError";
}

// An issuer chain longer than this is a loop or a mistake, not a PKI.
const MAX_CHAIN_DEPTH = 8;
const CERT_PATTERN = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** splitPemCertificates returns each certificate block of a PEM text, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(CERT_PATTERN) ?? [];
}

function text(value: string | Buffer, name: string): string {
  if (typeof value === "string") return value;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  throw new IdentityMaterialError(`${name} must be PEM text (a string or Buffer)`);
}

function certificates(pem: string, name: string): X509Certificate[] {
  const blocks = splitPemCertificates(pem);
  if (blocks.length === 0) throw new IdentityMaterialError(`${name} has no PEM certificate`);
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new IdentityMaterialError(
        `${name}: certificate ${i + 1} does not parse: ${(e as Error).message}`,
      );
    }
  });
}

function checkValidity(c: X509Certificate, what: string, nowMs: number): void {
  const from = Date.parse(c.validFrom);
  const to = Date.parse(c.validTo);
  if (nowMs < from) throw new IdentityMaterialError(`${what} is not valid before ${c.validFrom}`);
  if (nowMs >= to) throw new IdentityMaterialError(`${what} expired at ${c.validTo}`);
}

function issues(issuer: X509Certificate, subject: X509Certificate): boolean {
  return subject.checkIssued(issuer) && subject.verify(issuer.publicKey);
}

/**
 * validateIdentityMaterial checks a key, chain and trust bundle at `nowMs`
 * (wall-clock ms since the epoch) and returns the identity they make; it
 * throws an IdentityMaterialError naming the first problem.
 */
export function validateIdentityMaterial(pem: IdentityPem, nowMs: number): IdentityMaterial {
  if (pem === null || typeof pem !== "object") {
    throw new IdentityMaterialError("identity must be an object { key, cert, ca }");
  }
  const keyPem = text(pem.key, "key");
  const certPem = text(pem.cert, "cert");
  const caPem = text(pem.ca, "ca");
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    throw new IdentityMaterialError(`key is not a PEM private key: ${(e as Error).message}`);
  }
  const chain = certificates(certPem, "cert");
  const roots = certificates(caPem, "ca");
  const leaf = chain[0] as X509Certificate;
  if (!leaf.checkPrivateKey(key)) {
    throw new IdentityMaterialError("key does not match the leaf certificate");
  }
  const spiffeIds = parseSubjectAltNames(leaf.subjectAltName).uris.filter((u) =>
    u.startsWith("spiffe:"),
  );
  if (spiffeIds.length !== 1) {
    throw new IdentityMaterialError(
      spiffeIds.length === 0
        ? "the leaf certificate has no spiffe:// URI SAN"
        : `the leaf certificate has ${spiffeIds.length} spiffe:// URI SANs, want exactly 1`,
    );
  }
  const spiffeId = spiffeIds[0] as string;
  const problem = spiffeIdProblem(spiffeId);
  if (problem !== undefined) {
    throw new IdentityMaterialError(
      `the leaf's URI SAN ${spiffeId} is not a SPIFFE ID: ${problem}`,
    );
  }
  checkValidity(leaf, "the leaf certificate", nowMs);
  // Walk up from the leaf through the chain's intermediates to a bundle root.
  let current = leaf;
  for (let depth = 0; ; depth++) {
    const root = roots.find((r) => issues(r, current));
    if (root !== undefined) {
      checkValidity(root, `the trust bundle root ${root.subject.replaceAll("\n", ", ")}`, nowMs);
      break;
    }
    const next = chain.slice(1).find((c) => c !== current && issues(c, current));
    if (next === undefined || depth >= MAX_CHAIN_DEPTH) {
      throw new IdentityMaterialError(
        `the certificate chain does not chain to the trust bundle (no issuer for ${current.subject.replaceAll("\n", ", ")})`,
      );
    }
    checkValidity(next, `the intermediate ${next.subject.replaceAll("\n", ", ")}`, nowMs);
    current = next;
  }
  return {
    key: keyPem,
    cert: certPem,
    ca: caPem,
    spiffeId,
    trustDomain: parseSpiffeId(spiffeId).trustDomain,
    fingerprint256: leaf.fingerprint256,
    validFromMs: Date.parse(leaf.validFrom),
    validToMs: Date.parse(leaf.validTo),
  };
}
