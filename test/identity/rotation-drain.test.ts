// After a rotation, connections established with the superseded certificate
// are drained within the grace period: under 200 calls/s no call fails, a
// stream open across the rotation finishes, and then every live connection
// the server holds was established with the new certificates.
import { ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentitySource,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { createEchoImpl, EchoService as Echo } from "../support/echo-service.js";

const RATE_PER_TICK = 10;
const TICK_MS = 50; // 200 calls/s
const DRAIN_MS = 1_000;

describe("draining connections after a rotation", () => {
  let ca: DevCertificateAuthority;
  let serverSource: IdentitySource | undefined;
  let clientSource: IdentitySource | undefined;
  let server: MeshServer | undefined;
  let transport: MeshTransport | undefined;

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
  }, 60_000);

  afterAll(async () => {
    await transport?.close();
    await server?.close({ graceMs: 0 });
    serverSource?.close();
    clientSource?.close();
    await ca?.close();
  });

  it("moves every connection to the new server and client certificates with 0 failed calls", async () => {
    const [s1, s2, c1, c2] = await Promise.all([
      ca.issue({ spiffeId: "/sa/orders" }),
      ca.issue({ spiffeId: "/sa/orders" }),
      ca.issue({ spiffeId: "/sa/checkout" }),
      ca.issue({ spiffeId: "/sa/checkout" }),
    ]);
    serverSource = createIdentitySource({ ...s1, logger: false });
    clientSource = createIdentitySource({ ...c1, logger: false });
    server = createMeshServer({
      routes: (r) => r.service(Echo, createEchoImpl()),
      identity: { source: serverSource, drainAfterRotationMs: DRAIN_MS },
      logger: false,
    });
    const { address } = await server.listen();
    transport = createMeshTransport({ target: address, identity: clientSource, logger: false });
    const echo = createClient(Echo, transport);
    const sockets = () => server?.snapshot().sockets ?? [];

    let ok = 0;
    const failures: string[] = [];
    const pending = new Set<Promise<void>>();
    const load = setInterval(() => {
      for (let i = 0; i < RATE_PER_TICK; i++) {
        const p = echo
          .echo({ payload: new Uint8Array([i]) }, { timeoutMs: 30_000 })
          .then(() => {
            ok++;
          })
          .catch((e: unknown) => {
            failures.push(ConnectError.from(e).message);
          })
          .finally(() => pending.delete(p));
        pending.add(p);
      }
    }, TICK_MS);
    let longStream: Promise<number> | undefined;
    try {
      await expect.poll(() => ok, { timeout: 30_000 }).toBeGreaterThanOrEqual(100);
      expect(sockets().map((s) => s.tls?.certificateFingerprint256)).toContain(s1.fingerprint256);
      // Open across the server's rotation and longer than the drain: it finishes.
      longStream = (async () => {
        let n = 0;
        for await (const _ of echo.echoServerStream({ repeat: 25, intervalMs: 100 })) n++;
        return n;
      })();

      serverSource.update(s2);
      await expect
        .poll(() => sockets().map((s) => s.tls?.certificateFingerprint256), { timeout: 30_000 })
        .toEqual(expect.arrayContaining([s2.fingerprint256]));
      // Within the grace period, the old connections went away (the stream's one included, once it ended).
      await expect
        .poll(
          () => sockets().every((s) => s.tls?.certificateFingerprint256 === s2.fingerprint256),
          { timeout: 30_000 },
        )
        .toBe(true);
      const before = ok;
      await expect.poll(() => ok, { timeout: 30_000 }).toBeGreaterThanOrEqual(before + 100);

      clientSource.update(c2);
      await expect
        .poll(
          () => {
            const all = sockets();
            return (
              all.length > 0 && all.every((s) => s.tls?.peerFingerprint256 === c2.fingerprint256)
            );
          },
          { timeout: 30_000 },
        )
        .toBe(true);
      const after = ok;
      await expect.poll(() => ok, { timeout: 30_000 }).toBeGreaterThanOrEqual(after + 100);
    } finally {
      clearInterval(load);
    }
    await Promise.all([...pending]);
    expect(await longStream).toBe(25);
    expect(failures).toEqual([]);
    for (const s of sockets()) {
      expect(s.tls).toEqual({
        certificateFingerprint256: s2.fingerprint256,
        peerFingerprint256: c2.fingerprint256,
        peerSpiffeId: "spiffe://a/sa/checkout",
      });
    }
  }, 120_000);

  it("validates drainAfterRotationMs", () => {
    const source = serverSource as IdentitySource;
    expect(() =>
      createMeshServer({
        routes: (r) => r.service(Echo, createEchoImpl()),
        identity: { source, drainAfterRotationMs: -1 },
        logger: false,
      }),
    ).toThrow("identity.drainAfterRotationMs -1 must be a finite number >= 0 or false");
  });
});
