// A client the server refuses learns why: a mesh client names what TLS
// said, the endpoint and a hint; a grpc-js client fails UNAVAILABLE; the
// server logs each refusal (rate-limited) with the reason and address.
import { Writable } from "node:stream";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  createMeshTransport,
  type DevCertificateAuthority,
  type IdentitySource,
  type IssuedIdentity,
  type MeshServer,
  type MeshServerOptions,
  type MeshTransport,
  type MeshTransportOptions,
} from "../../src/index.js";
import { createEchoImpl, EchoService as Echo } from "../support/echo-service.js";
import {
  type EchoGrpcClient,
  EchoGrpcClientConstructor,
  grpcUnary,
} from "../support/grpc-js-echo.js";

const HOUR_MS = 60 * 60_000;

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

interface LogLine {
  level: number;
  event?: string;
  reason?: string;
  code?: string;
  remote?: string;
  suppressed?: number;
  msg: string;
}

describe("a client refused by a mesh server", () => {
  let ca: DevCertificateAuthority;
  let other: DevCertificateAuthority;
  let serverLeaf: IssuedIdentity;
  let stranger: IssuedIdentity;
  let expired: IssuedIdentity;
  let sources: IdentitySource[] = [];
  let servers: MeshServer[] = [];
  let transports: MeshTransport[] = [];
  let grpcClients: EchoGrpcClient[] = [];

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    other = await createDevCertificateAuthority({ trustDomain: "a" });
    [serverLeaf, stranger, expired] = await Promise.all([
      ca.issue({ spiffeId: "/sa/orders", dnsNames: ["localhost"] }),
      other.issue({ spiffeId: "/sa/checkout" }),
      ca.issue({
        spiffeId: "/sa/checkout",
        notBeforeMs: Date.now() - 2 * HOUR_MS,
        validityMs: HOUR_MS,
      }),
    ]);
  }, 60_000);

  afterEach(async () => {
    for (const c of grpcClients) c.close();
    await Promise.all(transports.map((t) => t.close()));
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    for (const s of sources) s.close();
    grpcClients = [];
    transports = [];
    servers = [];
    sources = [];
  });

  afterAll(async () => {
    await Promise.all([ca?.close(), other?.close()]);
  });

  function source(leaf: IssuedIdentity, options: { ca?: string } = {}) {
    const s = createIdentitySource({
      ...leaf,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      logger: false,
    });
    sources.push(s);
    return s;
  }

  async function serve(extra: Partial<MeshServerOptions> = {}) {
    const lines: LogLine[] = [];
    const served = { calls: 0 };
    const logger = pino(
      { level: "warn" },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(JSON.parse(String(chunk)) as LogLine);
          done();
        },
      }),
    );
    const impl = createEchoImpl();
    const server = createMeshServer({
      routes: (r) =>
        r.service(Echo, {
          ...impl,
          async echo(req, ctx) {
            served.calls++;
            return impl.echo(req, ctx);
          },
        }),
      identity: { source: source(serverLeaf) },
      logger,
      ...extra,
    });
    servers.push(server);
    const { address, port } = await server.listen();
    const refusals = () => lines.filter((l) => l.event === "tls.refused");
    return { address, port, served, refusals };
  }

  function echo(target: string, extra: Partial<MeshTransportOptions>) {
    const transport = createMeshTransport({ target, logger: false, ...extra });
    transports.push(transport);
    return createClient(Echo, transport);
  }

  function grpcJs(port: number, leaf?: IssuedIdentity): EchoGrpcClient {
    const creds =
      leaf === undefined
        ? grpc.credentials.createSsl(Buffer.from(ca.ca))
        : grpc.credentials.createSsl(
            Buffer.from(ca.ca),
            Buffer.from(leaf.key),
            Buffer.from(leaf.cert),
          );
    const c = new EchoGrpcClientConstructor(`127.0.0.1:${port}`, creds, {
      "grpc.ssl_target_name_override": "localhost",
    }) as unknown as EchoGrpcClient;
    grpcClients.push(c);
    return c;
  }

  it("without a client certificate: certificate required, with the hint to set identity; logged once", async () => {
    const { address, port, served, refusals } = await serve();
    // Trusts the server, presents nothing.
    const client = echo(address, { tls: { ca: ca.ca, checkServerIdentity: () => undefined } });
    for (let i = 0; i < 2; i++) {
      const e = await failure(client.echo({}));
      expect(e.code).toBe(Code.Unavailable);
      expect(e.rawMessage).toMatch(
        /^connection to 127\.0\.0\.1:\d+ refused by the server: certificate required \(NO_CLIENT_CERTIFICATE\); the server requires a client certificate: set `identity` on the transport$/,
      );
    }
    const out = await grpcUnary(grpcJs(port), {}, { timeoutMs: 20_000 });
    expect(out.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(served.calls).toBe(0);
    // Several refusals from one address and reason within a minute: one line.
    expect(refusals()).toHaveLength(1);
    expect(refusals()[0]).toMatchObject({
      level: 40,
      reason: "certificate required",
      code: "NO_CLIENT_CERTIFICATE",
      remote: "127.0.0.1",
    });
  });

  it("with a certificate from a CA the server does not trust: unknown ca, naming the SPIFFE ID", async () => {
    const { address, port, served, refusals } = await serve();
    // The client trusts both roots, so it accepts the server; the server trusts only its own.
    const client = echo(address, { identity: source(stranger, { ca: other.ca + ca.ca }) });
    const e = await failure(client.echo({}));
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toMatch(
      /^connection to 127\.0\.0\.1:\d+ refused by the server: unknown ca \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\); the server's trust bundle does not include the CA that issued the client certificate spiffe:\/\/a\/sa\/checkout$/,
    );
    const out = await grpcUnary(grpcJs(port, stranger), {}, { timeoutMs: 20_000 });
    expect(out.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(served.calls).toBe(0);
    expect(refusals()[0]).toMatchObject({ reason: "unknown ca", remote: "127.0.0.1" });
  });

  it("with an expired client certificate: certificate expired, saying when and to renew it", async () => {
    const { address, port, served, refusals } = await serve();
    // Loaded while it was valid; the rotation agent never replaced it.
    const soon = await ca.issue({
      spiffeId: "/sa/checkout",
      notBeforeMs: Date.now() - 60_000,
      validityMs: 62_000,
    });
    const client = echo(address, { identity: source(soon) });
    await expect.poll(() => Date.now(), { timeout: 10_000 }).toBeGreaterThan(soon.validToMs);
    const e = await failure(client.echo({}));
    expect(e.code).toBe(Code.Unavailable);
    const at = new Date(soon.validToMs).toISOString();
    expect(e.rawMessage).toMatch(/^connection to 127\.0\.0\.1:\d+ refused by the server: /);
    expect(e.rawMessage).toContain(
      `certificate expired (CERT_HAS_EXPIRED); the client certificate spiffe://a/sa/checkout expired at ${at}: renew it`,
    );
    const out = await grpcUnary(grpcJs(port, expired), {}, { timeoutMs: 20_000 });
    expect(out.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(served.calls).toBe(0);
    expect(refusals()[0]).toMatchObject({
      reason: "certificate expired",
      code: "CERT_HAS_EXPIRED",
    });
  });

  it('refuses a certificate that fails verification in "request" mode too, and lets none in as anonymous', async () => {
    const { address, served } = await serve({
      identity: { source: source(serverLeaf), clientCertificate: "request" },
    });
    const e = await failure(
      echo(address, { identity: source(stranger, { ca: other.ca + ca.ca }) }).echo({}),
    );
    expect(e.rawMessage).toContain("refused by the server: unknown ca");
    const anonymous = echo(address, { tls: { ca: ca.ca, checkServerIdentity: () => undefined } });
    expect((await anonymous.echo({})).payload).toEqual(new Uint8Array());
    expect(served.calls).toBe(1);
  });

  it("with a verified certificate whose SPIFFE ID the policy does not accept: PERMISSION_DENIED per call, not a refused connection", async () => {
    const { address, served } = await serve({
      authorization: {
        rules: [{ name: "orders-only", action: "ALLOW", principals: ["spiffe://a/sa/orders"] }],
      },
    });
    const checkout = await ca.issue({ spiffeId: "/sa/checkout" });
    const e = await failure(echo(address, { identity: source(checkout) }).echo({}));
    expect(e.code).toBe(Code.PermissionDenied);
    expect(served.calls).toBe(0);
  });

  it("names the TLS alert of a server that refuses in the handshake (node TLS with requestCert)", async () => {
    const { address } = await serve({
      identity: undefined,
      tls: { key: serverLeaf.key, cert: serverLeaf.cert, ca: ca.ca, requestCert: true },
    });
    const e = await failure(
      echo(address, { tls: { ca: ca.ca, checkServerIdentity: () => undefined } }).echo({}),
    );
    expect(e.code).toBe(Code.Unavailable);
    expect(e.rawMessage).toMatch(
      /^connection to 127\.0\.0\.1:\d+ refused by the server: certificate required \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\); the server requires a client certificate: set `identity` on the transport$/,
    );
  });
});
