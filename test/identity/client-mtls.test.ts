// The mesh client's side of mutual TLS: server SPIFFE IDs pinned per target,
// expired and untrusted server certificates, all over real TLS on loopback.
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EchoService } from "../../gen/test/v1/echo_pb.js";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentitySource,
  type IssuedIdentity,
  type MeshServer,
  type MeshTransport,
  type MeshTransportOptions,
  peerIdentityKey,
} from "../../src/index.js";
import { createEchoImpl, EchoService as Echo } from "../support/echo-service.js";

interface Served {
  calls: number;
}

function whoCalledImpl(served: Served): ServiceImpl<typeof EchoService> {
  return {
    ...createEchoImpl(),
    async echo(req, ctx) {
      served.calls++;
      return {
        payload: req.payload,
        servedBy: ctx.values.get(peerIdentityKey).spiffeId ?? "anonymous",
      };
    },
  };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

describe("mesh client with a workload identity (mTLS)", () => {
  let ca: DevCertificateAuthority;
  let other: DevCertificateAuthority;
  let caB: DevCertificateAuthority;
  let orders: IssuedIdentity;
  let otherSa: IssuedIdentity;
  let checkout: IssuedIdentity;
  let sources: IdentitySource[] = [];
  let servers: MeshServer[] = [];
  let transports: MeshTransport[] = [];

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    other = await createDevCertificateAuthority({ trustDomain: "a" });
    caB = await createDevCertificateAuthority({ trustDomain: "b" });
    [orders, otherSa, checkout] = await Promise.all([
      ca.issue({ spiffeId: "/sa/orders" }),
      ca.issue({ spiffeId: "/sa/other" }),
      ca.issue({ spiffeId: "/sa/checkout" }),
    ]);
  }, 60_000);

  afterEach(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    for (const s of sources) s.close();
    transports = [];
    servers = [];
    sources = [];
  });

  afterAll(async () => {
    await Promise.all([ca?.close(), other?.close(), caB?.close()]);
  });

  function source(leaf: IssuedIdentity, ca?: string): IdentitySource {
    const s = createIdentitySource({ ...leaf, ...(ca === undefined ? {} : { ca }), logger: false });
    sources.push(s);
    return s;
  }

  async function serve(leaf: IssuedIdentity, served: Served, ca?: string): Promise<string> {
    const server = createMeshServer({
      routes: (r) => r.service(Echo, whoCalledImpl(served)),
      identity: { source: source(leaf, ca) },
      logger: false,
    });
    servers.push(server);
    return (await server.listen()).address;
  }

  function client(target: string, extra: Partial<MeshTransportOptions> = {}) {
    const transport = createMeshTransport({
      target,
      identity: source(checkout, extra.tls?.ca as string | undefined),
      logger: false,
      ...extra,
    });
    transports.push(transport);
    return createClient(Echo, transport);
  }

  it("calls a server whose SPIFFE ID is pinned; the server sees the client's", async () => {
    const served = { calls: 0 };
    const address = await serve(orders, served);
    const echo = client(address, { serverIdentities: ["spiffe://a/sa/orders"] });
    const res = await echo.echo({ payload: new Uint8Array([1]) });
    expect(res.servedBy).toBe("spiffe://a/sa/checkout");
    expect(served.calls).toBe(1);
  });

  it("refuses a server presenting another SPIFFE ID: UNAVAILABLE naming it, no call served", async () => {
    const served = { calls: 0 };
    const address = await serve(otherSa, served);
    const echo = client(address, { serverIdentities: ["spiffe://a/sa/orders"] });
    for (let i = 0; i < 2; i++) {
      // The connection that failed the check is not used again: the second call fails alike.
      const e = await failure(echo.echo({}));
      expect(e.code).toBe(Code.Unavailable);
      expect(e.rawMessage).toMatch(
        /^connection to 127\.0\.0\.1:\d+ failed: server presented spiffe:\/\/a\/sa\/other, want spiffe:\/\/a\/sa\/orders \(ERR_SPIFFE_ID_MISMATCH\)$/,
      );
    }
    expect(served.calls).toBe(0);
  });

  it("accepts any workload of a pinned trust domain", async () => {
    const served = { calls: 0 };
    const address = await serve(otherSa, served);
    const echo = client(address, { serverIdentities: ["spiffe://a"] });
    expect((await echo.echo({})).servedBy).toBe("spiffe://a/sa/checkout");
  });

  it("accepts only its own trust domain by default", async () => {
    const served = { calls: 0 };
    // One bundle trusting both CAs: only the SPIFFE ID check can refuse.
    const bundle = ca.ca + caB.ca;
    const serverB = await caB.issue({ spiffeId: "/sa/orders" });
    const address = await serve(serverB, served, bundle);
    const transport = createMeshTransport({
      target: address,
      identity: source(checkout, bundle),
      logger: false,
    });
    transports.push(transport);
    const e = await failure(createClient(Echo, transport).echo({}));
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toContain(
      "server presented spiffe://b/sa/orders, want a workload of trust domain a",
    );
    expect(served.calls).toBe(0);
  });

  it("fails UNAVAILABLE naming CERT_HAS_EXPIRED for an expired server certificate", async () => {
    const hourMs = 60 * 60_000;
    const expired = await ca.issue({
      spiffeId: "/sa/orders",
      notBeforeMs: Date.now() - 2 * hourMs,
      validityMs: hourMs,
    });
    // An identity source refuses expired material: serve it with plain TLS options.
    expect(() => createIdentitySource({ ...expired, logger: false })).toThrow(/expired/);
    const server = createMeshServer({
      routes: (r) => r.service(Echo, createEchoImpl()),
      tls: { key: expired.key, cert: expired.cert, ca: ca.ca, requestCert: true },
      logger: false,
    });
    servers.push(server);
    const { address } = await server.listen();
    const e = await failure(client(address).echo({}));
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toMatch(
      /^connection to 127\.0\.0\.1:\d+ failed: certificate has expired \(CERT_HAS_EXPIRED\)$/,
    );
  });

  it("is refused by a server when its own client certificate expired: UNAVAILABLE, nothing served", async () => {
    const served = { calls: 0 };
    const address = await serve(orders, served);
    const hourMs = 60 * 60_000;
    const expired = await ca.issue({
      spiffeId: "/sa/checkout",
      notBeforeMs: Date.now() - 2 * hourMs,
      validityMs: hourMs,
    });
    // Plain TLS options: an identity source would refuse to load it.
    const transport = createMeshTransport({
      target: address,
      tls: {
        key: expired.key,
        cert: expired.cert,
        ca: ca.ca,
        checkServerIdentity: () => undefined,
      },
      logger: false,
    });
    transports.push(transport);
    const e = await failure(createClient(Echo, transport).echo({}));
    expect(e.code).toBe(Code.Unavailable);
    // The mesh server refuses it with a GOAWAY naming the reason.
    expect(e.rawMessage).toMatch(
      /^connection to 127\.0\.0\.1:\d+ refused by the server: certificate expired \(CERT_HAS_EXPIRED\); /,
    );
    expect(served.calls).toBe(0);
  });

  it("fails UNAVAILABLE naming the reason for a server certificate from an untrusted CA", async () => {
    const served = { calls: 0 };
    const stranger = await other.issue({ spiffeId: "/sa/orders" });
    const address = await serve(stranger, served, ca.ca + other.ca);
    const e = await failure(
      client(address, { serverIdentities: ["spiffe://a/sa/orders"] }).echo({}),
    );
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toMatch(
      /\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)$/,
    );
    expect(served.calls).toBe(0);
  });

  it("validates identity options when the transport is built", () => {
    expect(() =>
      createMeshTransport({ target: "127.0.0.1:1", serverIdentities: ["spiffe://a/sa/x"] }),
    ).toThrow(/serverIdentities needs identity/);
    expect(() =>
      createMeshTransport({
        target: "127.0.0.1:1",
        identity: source(checkout),
        serverIdentities: ["https://a/sa/x"],
      }),
    ).toThrow(/serverIdentities: "https:\/\/a\/sa\/x" is not a SPIFFE ID/);
  });
});
