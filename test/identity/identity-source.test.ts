// Identity sources: validation of new material, rejection of bad files with
// the old certificate kept (and serving), rotation events, background timers.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentityEvent,
  type IdentityFiles,
  IdentityMaterialError,
  type IssuedIdentity,
  validateIdentityMaterial,
} from "../../src/index.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { captureLogs } from "../observability/log-capture.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

const HOUR_MS = 60 * 60_000;

/** garble breaks the DER inside a PEM block (its first base64 line). */
function garble(pem: string): string {
  const lines = pem.split("\n");
  lines[1] = "A".repeat((lines[1] ?? "").length);
  return lines.join("\n");
}

function replace(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe("identity sources", () => {
  let ca: DevCertificateAuthority;
  let other: DevCertificateAuthority;
  let a: IssuedIdentity;
  let b: IssuedIdentity;
  let dir: string;
  let selfSigned: { key: string; cert: string };

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    other = await createDevCertificateAuthority({ trustDomain: "a" });
    [a, b] = await Promise.all([
      ca.issue({ spiffeId: "/sa/orders" }),
      ca.issue({ spiffeId: "/sa/orders" }),
    ]);
    dir = mkdtempSync(join(tmpdir(), "mesh-idsrc-"));
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "plain.key"),
        "-out",
        join(dir, "plain.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
      ],
      { stdio: "ignore" },
    );
    selfSigned = {
      key: readFileSync(join(dir, "plain.key"), "utf8"),
      cert: readFileSync(join(dir, "plain.pem"), "utf8"),
    };
  }, 60_000);

  afterAll(async () => {
    await Promise.all([ca?.close(), other?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("validates material: a table of bad key, chain and bundle combinations", async () => {
    const expired = await ca.issue({
      spiffeId: "/sa/orders",
      notBeforeMs: Date.now() - 2 * HOUR_MS,
      validityMs: HOUR_MS,
    });
    const future = await ca.issue({
      spiffeId: "/sa/orders",
      notBeforeMs: Date.now() + HOUR_MS,
      validityMs: HOUR_MS,
    });
    const stranger = await other.issue({ spiffeId: "/sa/orders" });
    const now = Date.now();
    const cases: [string, Parameters<typeof validateIdentityMaterial>[0], RegExp][] = [
      ["key of another leaf", { ...a, key: b.key }, /key does not match the leaf certificate/],
      ["not a key", { ...a, key: "nope" }, /key is not a PEM private key/],
      ["no certificate", { ...a, cert: "" }, /cert has no PEM certificate/],
      ["garbled certificate", { ...a, cert: garble(a.cert) }, /does not parse/],
      ["empty bundle", { ...a, ca: "" }, /ca has no PEM certificate/],
      ["expired leaf", expired, /leaf certificate expired at/],
      ["leaf not yet valid", future, /leaf certificate is not valid before/],
      ["another CA's bundle", { ...a, ca: other.ca }, /does not chain to the trust bundle/],
      ["another CA's leaf", { ...stranger, ca: ca.ca }, /does not chain to the trust bundle/],
      ["no SPIFFE ID", { ...selfSigned, ca: selfSigned.cert }, /has no spiffe:\/\/ URI SAN/],
    ];
    for (const [name, pem, why] of cases) {
      expect(() => validateIdentityMaterial(pem, now), name).toThrow(IdentityMaterialError);
      expect(() => validateIdentityMaterial(pem, now), name).toThrow(why);
    }
    const good = validateIdentityMaterial(a, now);
    expect(good.spiffeId).toBe("spiffe://a/sa/orders");
    expect(good.trustDomain).toBe("a");
    expect(good.fingerprint256).toBe(a.fingerprint256);
    // A bundle holding several roots is fine, in any order.
    expect(validateIdentityMaterial({ ...a, ca: other.ca + ca.ca }, now).spiffeId).toBe(
      "spiffe://a/sa/orders",
    );
  });

  it("update() rotates to good material and rejects bad material, keeping the old", () => {
    const events: IdentityEvent[] = [];
    const logs = captureLogs("info");
    const source = createIdentitySource({
      ...a,
      logger: logs.logger,
      onEvent: (e) => events.push(e),
    });
    try {
      expect(source.current.fingerprint256).toBe(a.fingerprint256);
      expect(() => source.update({ ...b, key: a.key })).toThrow(/key does not match/);
      expect(source.current.fingerprint256).toBe(a.fingerprint256);
      source.update(b);
      expect(source.current.fingerprint256).toBe(b.fingerprint256);
      // The same material again is no rotation.
      source.update(b);
      expect(events.map((e) => e.type)).toEqual(["identity-rejected", "identity-rotated"]);
      expect(events[0]).toMatchObject({ keptFingerprint256: a.fingerprint256 });
      expect(events[1]).toMatchObject({
        fingerprint256: b.fingerprint256,
        previousFingerprint256: a.fingerprint256,
        spiffeId: "spiffe://a/sa/orders",
      });
      const lines = logs.lines();
      const rejected = lines.find((l) => l.event === "identity.rejected");
      expect(rejected?.level).toBe(50);
      expect(rejected?.reason).toBe("key does not match the leaf certificate");
      // No key material in the log.
      expect(logs.raw.join("")).not.toContain("PRIVATE KEY");
    } finally {
      source.close();
    }
  });

  it("refuses bad options and bad first material when it is built", () => {
    expect(() => createIdentitySource({ ...a, key: 42 } as never)).toThrow(TypeError);
    expect(() => createIdentitySource({ keyFile: "", certFile: "c", caFile: "ca" })).toThrow(
      /keyFile "" must be a file path/,
    );
    expect(() => createIdentitySource({ ...a, pollIntervalMs: -1 })).toThrow(RangeError);
    expect(() => createIdentitySource({ ...a, key: b.key, logger: false })).toThrow(
      IdentityMaterialError,
    );
  });

  it("polls files on the injected clock with background timers, stopped by close()", () => {
    const d = mkdtempSync(join(dir, "poll-"));
    const f: IdentityFiles = {
      keyFile: join(d, "key.pem"),
      certFile: join(d, "cert.pem"),
      caFile: join(d, "ca.pem"),
    };
    writeFileSync(f.keyFile, a.key);
    writeFileSync(f.certFile, a.cert);
    writeFileSync(f.caFile, a.ca);
    const clock = createFakeClock();
    const source = createIdentitySource({ ...f, clock, pollIntervalMs: 1_000, logger: false });
    expect(source.current.fingerprint256).toBe(a.fingerprint256);
    expect(clock.pendingTimers).toBe(1);
    source.close();
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects bad new files with a logged error; the server keeps its certificate and serves", async () => {
    const d = mkdtempSync(join(dir, "files-"));
    const f: IdentityFiles = {
      keyFile: join(d, "key.pem"),
      certFile: join(d, "cert.pem"),
      caFile: join(d, "ca.pem"),
    };
    replace(f.keyFile, a.key);
    replace(f.certFile, a.cert);
    replace(f.caFile, a.ca);
    const logs = captureLogs("info");
    const events: IdentityEvent[] = [];
    const source = createIdentitySource({
      ...f,
      pollIntervalMs: 200,
      logger: logs.logger,
      onEvent: (e) => events.push(e),
    });
    const client = await ca.issue({ spiffeId: "/sa/checkout" });
    const clientSource = createIdentitySource({ ...client, logger: false });
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      identity: { source },
      logger: false,
    });
    const { address, port } = await server.listen();
    const transport = createMeshTransport({
      target: address,
      identity: clientSource,
      logger: false,
    });
    const echo = createClient(EchoService, transport);
    const serverCert = () =>
      new Promise<string>((resolve, reject) => {
        const s = tls.connect({
          host: "127.0.0.1",
          port,
          key: client.key,
          cert: client.cert,
          ca: client.ca,
          ALPNProtocols: ["h2"],
          checkServerIdentity: () => undefined,
        });
        s.once("secureConnect", () => {
          resolve(s.getPeerCertificate().fingerprint256);
          s.destroy();
        });
        s.once("error", reject);
      });
    try {
      await echo.echo({});
      // A certificate whose key is not the one in the key file: rejected.
      replace(f.certFile, b.cert);
      await expect
        .poll(() => events.filter((e) => e.type === "identity-rejected").length, {
          timeout: 20_000,
        })
        .toBe(1);
      expect(source.current.fingerprint256).toBe(a.fingerprint256);
      expect(await serverCert()).toBe(a.fingerprint256);
      expect([...(await echo.echo({ payload: new Uint8Array([1]) })).payload]).toEqual([1]);
      // A certificate from a CA outside the bundle: rejected too.
      const stranger = await other.issue({ spiffeId: "/sa/orders" });
      replace(f.keyFile, stranger.key);
      replace(f.certFile, stranger.cert);
      await expect
        .poll(
          () =>
            events.some(
              (e) =>
                e.type === "identity-rejected" &&
                /does not chain to the trust bundle/.test(e.reason),
            ),
          { timeout: 20_000 },
        )
        .toBe(true);
      expect(await serverCert()).toBe(a.fingerprint256);
      await echo.echo({});
      const errors = logs.lines().filter((l) => l.event === "identity.rejected");
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(
        errors.every((l) => l.level === 50 && l.kept_fingerprint256 === a.fingerprint256),
      ).toBe(true);
      // Good files at last: the next connection gets them.
      replace(f.keyFile, b.key);
      replace(f.certFile, b.cert);
      await expect
        .poll(() => source.current.fingerprint256, { timeout: 20_000 })
        .toBe(b.fingerprint256);
      expect(await serverCert()).toBe(b.fingerprint256);
      await echo.echo({});
    } finally {
      await transport.close();
      await server.close({ graceMs: 0 });
      source.close();
      clientSource.close();
    }
  }, 60_000);
});
