// Certificate rotation under load: a mesh server and a mesh client, both on
// watched identity files, take two new short-lived certificates each while
// 200 calls/s run; no call fails and new connections see the new certificates.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EchoService } from "../../gen/test/v1/echo_pb.js";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentityEvent,
  type IdentityFiles,
  type IdentitySource,
  type IssuedIdentity,
  type MeshServer,
  type MeshTransport,
  peerIdentityKey,
} from "../../src/index.js";
import { createEchoImpl, EchoService as Echo } from "../support/echo-service.js";

const RATE_PER_TICK = 10;
const TICK_MS = 50; // 10 calls every 50 ms: 200 calls/s
const LEAF_LIFETIME_MS = 5 * 60_000;

function files(dir: string): IdentityFiles {
  return {
    keyFile: join(dir, "key.pem"),
    certFile: join(dir, "cert.pem"),
    caFile: join(dir, "ca.pem"),
  };
}

/** install writes an identity as a rotating agent would: temp files, then renames. */
function install(dir: string, leaf: IssuedIdentity): void {
  const f = files(dir);
  for (const [path, text] of [
    [f.caFile, leaf.ca],
    [f.certFile, leaf.cert],
    [f.keyFile, leaf.key],
  ] as const) {
    writeFileSync(`${path}.tmp`, text);
  }
  renameSync(`${f.caFile}.tmp`, f.caFile);
  renameSync(`${f.keyFile}.tmp`, f.keyFile);
  renameSync(`${f.certFile}.tmp`, f.certFile);
}

/** probe opens a new TLS connection and returns the server certificate's fingerprint. */
function probe(port: number, client: IssuedIdentity): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port,
      key: client.key,
      cert: client.cert,
      ca: client.ca,
      ALPNProtocols: ["h2"],
      checkServerIdentity: () => undefined,
    });
    socket.once("secureConnect", () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fp);
    });
    socket.once("error", reject);
  });
}

describe("certificate rotation under load", () => {
  let ca: DevCertificateAuthority;
  let serverDir: string;
  let clientDir: string;
  let serverSource: IdentitySource | undefined;
  let clientSource: IdentitySource | undefined;
  let server: MeshServer | undefined;
  let transport: MeshTransport | undefined;

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    serverDir = mkdtempSync(join(tmpdir(), "mesh-rot-server-"));
    clientDir = mkdtempSync(join(tmpdir(), "mesh-rot-client-"));
  }, 60_000);

  afterAll(async () => {
    await transport?.close();
    await server?.close({ graceMs: 0 });
    serverSource?.close();
    clientSource?.close();
    await ca?.close();
    for (const d of [serverDir, clientDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it("replaces server and client certificates twice under 200 calls/s with 0 failed calls", async () => {
    const issue = (sa: string) => ca.issue({ spiffeId: sa, validityMs: LEAF_LIFETIME_MS });
    const serverLeaves = [await issue("/sa/orders")];
    const clientLeaves = [await issue("/sa/checkout")];
    install(serverDir, serverLeaves[0] as IssuedIdentity);
    install(clientDir, clientLeaves[0] as IssuedIdentity);
    const events: IdentityEvent[] = [];
    // A short poll backs up fs.watch: the test waits on outcomes, not on timing.
    serverSource = createIdentitySource({
      ...files(serverDir),
      pollIntervalMs: 200,
      logger: false,
      onEvent: (e) => events.push(e),
    });
    clientSource = createIdentitySource({
      ...files(clientDir),
      pollIntervalMs: 200,
      logger: false,
      onEvent: (e) => events.push(e),
    });

    const seenClientCerts = new Map<string, number>();
    const impl: ServiceImpl<typeof EchoService> = {
      ...createEchoImpl(),
      async echo(req, ctx) {
        const peer = ctx.values.get(peerIdentityKey);
        const fp = peer.fingerprint256 ?? "none";
        seenClientCerts.set(fp, (seenClientCerts.get(fp) ?? 0) + 1);
        return { payload: req.payload, servedBy: peer.spiffeId ?? "anonymous" };
      },
    };
    server = createMeshServer({
      routes: (r) => r.service(Echo, impl),
      identity: { source: serverSource },
      logger: false,
    });
    const { address, port } = await server.listen();
    transport = createMeshTransport({
      target: address,
      identity: clientSource,
      serverIdentities: ["spiffe://a/sa/orders"],
      logger: false,
    });
    const echo = createClient(Echo, transport);

    let ok = 0;
    const failures: string[] = [];
    const pending = new Set<Promise<void>>();
    const fire = () => {
      for (let i = 0; i < RATE_PER_TICK; i++) {
        const p = echo
          .echo({ payload: new Uint8Array([i]) }, { timeoutMs: 30_000 })
          .then((res) => {
            if (res.servedBy === "spiffe://a/sa/checkout") ok++;
            else failures.push(`served by ${res.servedBy}`);
          })
          .catch((e: unknown) => {
            failures.push(ConnectError.from(e).message);
          })
          .finally(() => pending.delete(p));
        pending.add(p);
      }
    };
    const load = setInterval(fire, TICK_MS);
    // A stream open across both rotations: established connections finish their calls.
    const longStream = (async () => {
      let n = 0;
      for await (const _ of echo.echoServerStream({ repeat: 30, intervalMs: 100 })) n++;
      return n;
    })();
    const probes: string[] = [];
    try {
      await expect.poll(() => ok, { timeout: 30_000 }).toBeGreaterThanOrEqual(100);
      probes.push(await probe(port, clientLeaves[0] as IssuedIdentity));
      for (let round = 1; round <= 2; round++) {
        const nextServer = await issue("/sa/orders");
        const nextClient = await issue("/sa/checkout");
        serverLeaves.push(nextServer);
        clientLeaves.push(nextClient);
        install(serverDir, nextServer);
        await expect
          .poll(() => serverSource?.current.fingerprint256, { timeout: 30_000 })
          .toBe(nextServer.fingerprint256);
        // A new connection gets the new server certificate.
        probes.push(await probe(port, clientLeaves[round - 1] as IssuedIdentity));
        install(clientDir, nextClient);
        await expect
          .poll(() => clientSource?.current.fingerprint256, { timeout: 30_000 })
          .toBe(nextClient.fingerprint256);
        // The client's next connection presents the new client certificate.
        await expect
          .poll(() => seenClientCerts.get(nextClient.fingerprint256) ?? 0, { timeout: 30_000 })
          .toBeGreaterThan(0);
        const before = ok;
        await expect.poll(() => ok, { timeout: 30_000 }).toBeGreaterThanOrEqual(before + 100);
      }
    } finally {
      clearInterval(load);
    }
    await Promise.all([...pending]);
    expect(await longStream).toBe(30);

    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(300);
    expect(probes).toEqual(serverLeaves.map((l) => l.fingerprint256));
    for (const leaf of clientLeaves) {
      expect(seenClientCerts.get(leaf.fingerprint256) ?? 0).toBeGreaterThan(0);
    }
    // Every call came from one of the three client certificates.
    expect([...seenClientCerts.keys()].sort()).toEqual(
      clientLeaves.map((l) => l.fingerprint256).sort(),
    );
    const rotated = events.filter((e) => e.type === "identity-rotated");
    expect(rotated).toHaveLength(4);
  }, 120_000);
});
