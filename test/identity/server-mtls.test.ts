// Mutual TLS on the mesh server with identities from the dev CA: a real
// grpc-js client presenting (or not) a client certificate over loopback.
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EchoService } from "../../gen/test/v1/echo_pb.js";
import {
  createDevCertificateAuthority,
  createIdentitySource,
  createMeshServer,
  currentPeerIdentity,
  type DevCertificateAuthority,
  type IssuedIdentity,
  type MeshServer,
  peerIdentityKey,
} from "../../src/index.js";
import { createEchoImpl } from "../support/echo-service.js";
import {
  EchoService as Echo,
  type EchoGrpcClient,
  EchoGrpcClientConstructor,
  grpcUnary,
} from "../support/grpc-js-echo.js";

// servedBy says who called: the context value and the accessor must agree.
function whoAmIImpl(): ServiceImpl<typeof EchoService> {
  const base = createEchoImpl();
  return {
    ...base,
    async echo(req, ctx) {
      const fromCtx = ctx.values.get(peerIdentityKey);
      const fromScope = currentPeerIdentity();
      if (fromCtx !== fromScope) {
        throw new ConnectError("context value and currentPeerIdentity differ", Code.Internal);
      }
      return { payload: req.payload, servedBy: fromCtx.spiffeId ?? "anonymous" };
    },
  };
}

function grpcJsClient(address: string, ca: string, leaf?: IssuedIdentity): EchoGrpcClient {
  const creds =
    leaf === undefined
      ? grpc.credentials.createSsl(Buffer.from(ca))
      : grpc.credentials.createSsl(Buffer.from(ca), Buffer.from(leaf.key), Buffer.from(leaf.cert));
  // The certificate names localhost: an IP as TLS server name is deprecated in node.
  return new EchoGrpcClientConstructor(address, creds, {
    "grpc.ssl_target_name_override": "localhost",
  }) as unknown as EchoGrpcClient;
}

describe("mesh server with a workload identity (mTLS)", () => {
  let ca: DevCertificateAuthority;
  let serverLeaf: IssuedIdentity;
  let clientLeaf: IssuedIdentity;
  const servers: MeshServer[] = [];
  const clients: EchoGrpcClient[] = [];

  beforeAll(async () => {
    ca = await createDevCertificateAuthority({ trustDomain: "a" });
    // grpc-js checks the host name: the server's certificate names localhost too.
    serverLeaf = await ca.issue({ spiffeId: "/sa/orders", dnsNames: ["localhost"] });
    clientLeaf = await ca.issue({ spiffeId: "/sa/checkout" });
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    await ca?.close();
  });

  async function start(clientCertificate?: "require" | "request"): Promise<string> {
    return (await startBound(clientCertificate)).address;
  }

  async function startBound(clientCertificate?: "require" | "request") {
    const source = createIdentitySource({ ...serverLeaf, logger: false });
    const server = createMeshServer({
      routes: (r) => r.service(Echo, whoAmIImpl()),
      identity: { source, ...(clientCertificate === undefined ? {} : { clientCertificate }) },
      logger: false,
    });
    servers.push(server);
    const bound = await server.listen();
    expect(bound.url.startsWith("https://")).toBe(true);
    return bound;
  }

  it("gives the handler the SPIFFE ID of a grpc-js client's certificate", async () => {
    const address = await start();
    const client = grpcJsClient(address, ca.ca, clientLeaf);
    clients.push(client);
    const out = await grpcUnary(client, { payload: new Uint8Array([1]) });
    expect(out.error).toBeUndefined();
    expect(out.response?.servedBy).toBe("spiffe://a/sa/checkout");
  });

  it('lets a client without a certificate in as anonymous with clientCertificate "request"', async () => {
    const address = await start("request");
    const anonymous = grpcJsClient(address, ca.ca);
    const named = grpcJsClient(address, ca.ca, clientLeaf);
    clients.push(anonymous, named);
    const a = await grpcUnary(anonymous, {});
    expect(a.error).toBeUndefined();
    expect(a.response?.servedBy).toBe("anonymous");
    const n = await grpcUnary(named, {});
    expect(n.response?.servedBy).toBe("spiffe://a/sa/checkout");
  });

  it("gives the peer identity to Connect and gRPC-Web calls too (the connect-node path)", async () => {
    const { port } = await startBound();
    const nodeOptions = {
      key: clientLeaf.key,
      cert: clientLeaf.cert,
      ca: ca.ca,
      // The certificate names localhost; the test connects to 127.0.0.1.
      servername: "localhost",
    };
    for (const make of [createConnectTransport, createGrpcWebTransport]) {
      const transport = make({
        baseUrl: `https://127.0.0.1:${port}`,
        httpVersion: "2",
        nodeOptions,
      });
      const res = await createClient(Echo, transport).echo({ payload: new Uint8Array([2]) });
      expect(res.servedBy).toBe("spiffe://a/sa/checkout");
    }
  });

  it("refuses the handshake of a client without a certificate by default", async () => {
    const address = await start();
    const client = grpcJsClient(address, ca.ca);
    clients.push(client);
    const out = await grpcUnary(client, {}, { timeoutMs: 20_000 });
    expect(out.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(out.response).toBeUndefined();
  });

  it("refuses a client certificate from another trust bundle, in both modes", async () => {
    const other = await createDevCertificateAuthority({ trustDomain: "a" });
    try {
      const stranger = await other.issue({ spiffeId: "/sa/checkout" });
      for (const mode of ["require", "request"] as const) {
        const address = await start(mode);
        const client = grpcJsClient(address, ca.ca, stranger);
        clients.push(client);
        const out = await grpcUnary(client, {}, { timeoutMs: 20_000 });
        expect(out.status.code, mode).toBe(grpc.status.UNAVAILABLE);
      }
    } finally {
      await other.close();
    }
  }, 60_000);
});
