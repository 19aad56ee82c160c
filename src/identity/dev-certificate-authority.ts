import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { IdentityPem } from "./identity-material.js";
import { parseSpiffeId } from "./spiffe-id.js";

const run = promisify(execFile);

/** DevCertificateAuthorityOptions configures createDevCertificateAuthority. */
export interface DevCertificateAuthorityOptions {
  /** trustDomain names the CA's SPIFFE trust domain, e.g. `a` or `example.org`. */
  readonly trustDomain: string;
  /** validityMs is how long the root is valid; default 1 day. */
  readonly validityMs?: number;
  /** openssl is the openssl binary; default `openssl` on the PATH. */
  readonly openssl?: string;
}

/** IssueOptions describe one leaf certificate (an X.509-SVID). */
export interface IssueOptions {
  /**
   * spiffeId is the workload's SPIFFE ID in the CA's trust domain
   * (`spiffe://a/ns/default/sa/orders`), or only its path (`/sa/orders`).
   */
  readonly spiffeId: string;
  /** validityMs is the leaf's lifetime from `notBeforeMs`; default 1 hour. Short ones exercise rotation. */
  readonly validityMs?: number;
  /** notBeforeMs is when the leaf becomes valid (ms since the epoch); default a minute ago (clock skew). */
  readonly notBeforeMs?: number;
  /** dnsNames and ipAddresses are extra SANs, for peers that check host names (grpc-js by default). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** IssuedIdentity is a leaf key and certificate with the CA's bundle: usable as an identity's PEM. */
export interface IssuedIdentity extends IdentityPem {
  readonly key: string;
  readonly cert: string;
  readonly ca: string;
  readonly spiffeId: string;
  /** fingerprint256 is the leaf's SHA-256 fingerprint, as node's TLS reports it. */
  readonly fingerprint256: string;
  readonly validToMs: number;
}

/**
 * DevCertificateAuthority is a throw-away certificate authority for tests,
 * demos and benchmarks. Its root key lives in a temporary directory that
 * `close()` removes. Not for production identities: use SPIRE, cert-manager
 * or your mesh's CA there.
 */
export interface DevCertificateAuthority {
  readonly trustDomain: string;
  /** ca is the root certificate (PEM): the trust bundle of this trust domain. */
  readonly ca: string;
  /** issue makes a fresh EC P-256 key and a leaf certificate for a SPIFFE ID. */
  issue(options: IssueOptions): Promise<IssuedIdentity>;
  /** close removes the temporary directory with the root key. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DAY_MS = 24 * 60 * 60_000;
const HOUR_MS = 60 * 60_000;
// Leaves start a minute in the past: hosts' clocks disagree a little.
const SKEW_MS = 60_000;

// `openssl ca` is the only openssl 3.0 command that takes exact start and
// end dates (x509 -req only takes whole days); it wants a small database.
const CA_CONFIG = `[ ca ]
default_ca = dev
[ dev ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
email_in_dn = no
copy_extensions = none
[ any ]
organizationName = optional
commonName = optional
`;

function asn1Time(ms: number): string {
  // GeneralizedTime YYYYMMDDHHMMSSZ.
  return `${new Date(ms).toISOString().replace(/[-:T]/g, "").slice(0, 14)}Z`;
}

function validateMsOption(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`${name} ${value} must be a finite number > 0`);
  }
}

function validateSanList(name: string, values: readonly string[] | undefined): void {
  if (values === undefined) return;
  if (!Array.isArray(values)) throw new TypeError(`${name} must be an array of strings`);
  for (const v of values) {
    if (typeof v !== "string" || !/^[A-Za-z0-9.:*-]+$/.test(v)) {
      throw new TypeError(`${name} entry ${JSON.stringify(v)} is not a host name or address`);
    }
  }
}

/**
 * createDevCertificateAuthority makes a small root CA for a SPIFFE trust
 * domain with Debian's (or any) `openssl` binary and issues short-lived
 * SPIFFE leaf certificates from it. For development and tests only: the
 * root key sits in a temporary directory until `close()`.
 */
export async function createDevCertificateAuthority(
  options: DevCertificateAuthorityOptions,
): Promise<DevCertificateAuthority> {
  const trustDomain = options?.trustDomain;
  const td = parseSpiffeId(`spiffe://${String(trustDomain)}`);
  if (td.path !== "") {
    throw new TypeError(`trustDomain ${JSON.stringify(trustDomain)} must not have a path`);
  }
  validateMsOption("validityMs", options.validityMs);
  const openssl = options.openssl ?? "openssl";
  const dir = await mkdtemp(join(tmpdir(), "mesh-dev-ca-"));
  const path = (name: string) => join(dir, name);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const validityMs = options.validityMs ?? DAY_MS;
    await writeFile(path("ca.cnf"), CA_CONFIG);
    await writeFile(path("index.txt"), "");
    await writeFile(path("serial"), "1000\n");
    await writeFile(
      path("root.ext"),
      [
        "[ root ]",
        "basicConstraints = critical, CA:TRUE",
        "keyUsage = critical, keyCertSign, cRLSign",
        "subjectKeyIdentifier = hash",
        `subjectAltName = URI:spiffe://${td.trustDomain}`,
        "",
      ].join("\n"),
    );
    await run(
      openssl,
      ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key"],
      {
        cwd: dir,
      },
    );
    await run(
      openssl,
      [
        "req",
        "-new",
        "-key",
        "root.key",
        "-subj",
        `/O=connect-mesh dev CA/CN=${td.trustDomain}`,
        "-out",
        "root.csr",
      ],
      { cwd: dir },
    );
    const now = Date.now();
    await run(
      openssl,
      [
        "ca",
        "-batch",
        "-selfsign",
        "-config",
        "ca.cnf",
        "-keyfile",
        "root.key",
        "-in",
        "root.csr",
        "-out",
        "root.pem",
        "-notext",
        "-startdate",
        asn1Time(now - SKEW_MS),
        "-enddate",
        asn1Time(now + validityMs),
        "-extfile",
        "root.ext",
        "-extensions",
        "root",
      ],
      { cwd: dir },
    );
    const ca = pemOnly(await readFile(path("root.pem"), "utf8"));
    // `openssl ca` keeps one database: issue one leaf at a time.
    let queue: Promise<unknown> = Promise.resolve();
    let counter = 0;

    const issueOne = async (opts: IssueOptions): Promise<IssuedIdentity> => {
      if (closed) throw new Error("dev certificate authority is closed");
      const id = `leaf${++counter}`;
      const spiffeId = opts.spiffeId.startsWith("/")
        ? `spiffe://${td.trustDomain}${opts.spiffeId}`
        : opts.spiffeId;
      const parsed = parseSpiffeId(spiffeId);
      if (parsed.trustDomain !== td.trustDomain) {
        throw new TypeError(
          `spiffeId ${spiffeId} is not in this CA's trust domain ${td.trustDomain}`,
        );
      }
      const notBefore = opts.notBeforeMs ?? Date.now() - SKEW_MS;
      const notAfter =
        notBefore + (opts.validityMs ?? HOUR_MS) + (opts.notBeforeMs === undefined ? SKEW_MS : 0);
      const sans = [
        `URI:${spiffeId}`,
        ...(opts.dnsNames ?? []).map((d) => `DNS:${d}`),
        ...(opts.ipAddresses ?? []).map((ip) => `IP:${ip}`),
      ];
      await writeFile(
        path(`${id}.ext`),
        [
          "[ leaf ]",
          "basicConstraints = critical, CA:FALSE",
          "keyUsage = critical, digitalSignature, keyEncipherment",
          "extendedKeyUsage = serverAuth, clientAuth",
          "authorityKeyIdentifier = keyid",
          `subjectAltName = critical, ${sans.join(", ")}`,
          "",
        ].join("\n"),
      );
      await run(
        openssl,
        [
          "genpkey",
          "-algorithm",
          "EC",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-out",
          `${id}.key`,
        ],
        { cwd: dir },
      );
      await run(
        openssl,
        [
          "req",
          "-new",
          "-key",
          `${id}.key`,
          "-subj",
          "/O=connect-mesh dev workload",
          "-out",
          `${id}.csr`,
        ],
        { cwd: dir },
      );
      await run(
        openssl,
        [
          "ca",
          "-batch",
          "-config",
          "ca.cnf",
          "-cert",
          "root.pem",
          "-keyfile",
          "root.key",
          "-in",
          `${id}.csr`,
          "-out",
          `${id}.pem`,
          "-notext",
          "-startdate",
          asn1Time(notBefore),
          "-enddate",
          asn1Time(notAfter),
          "-extfile",
          `${id}.ext`,
          "-extensions",
          "leaf",
        ],
        { cwd: dir },
      );
      const [key, cert] = await Promise.all([
        readFile(path(`${id}.key`), "utf8"),
        readFile(path(`${id}.pem`), "utf8").then(pemOnly),
      ]);
      await Promise.all(
        [".key", ".csr", ".ext", ".pem"].map((ext) => rm(path(`${id}${ext}`), { force: true })),
      );
      const x509 = new X509Certificate(cert);
      return {
        key,
        cert,
        ca,
        spiffeId,
        fingerprint256: x509.fingerprint256,
        validToMs: Date.parse(x509.validTo),
      };
    };

    const authority: DevCertificateAuthority = {
      trustDomain: td.trustDomain,
      ca,
      issue(opts) {
        if (opts === null || typeof opts !== "object" || typeof opts.spiffeId !== "string") {
          return Promise.reject(new TypeError("issue: spiffeId must be a string"));
        }
        try {
          validateMsOption("validityMs", opts.validityMs);
          if (opts.notBeforeMs !== undefined && !Number.isFinite(opts.notBeforeMs)) {
            throw new RangeError(`notBeforeMs ${opts.notBeforeMs} must be a finite number`);
          }
          validateSanList("dnsNames", opts.dnsNames);
          validateSanList("ipAddresses", opts.ipAddresses);
        } catch (e) {
          return Promise.reject(e);
        }
        const p = queue.then(() => issueOne(opts));
        queue = p.catch(() => undefined);
        return p;
      },
      close,
      [Symbol.asyncDispose]: close,
    };
    return authority;
  } catch (e) {
    await close();
    throw e;
  }
}

function pemOnly(text: string): string {
  const begin = text.indexOf("-----BEGIN CERTIFICATE-----");
  return begin < 0 ? text : text.slice(begin);
}
