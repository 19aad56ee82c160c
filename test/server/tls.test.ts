import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMeshServer, createMeshTransport } from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

describe("mesh server and transport over TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "mesh-tls-"));
  let key: Buffer;
  let cert: Buffer;
  beforeAll(() => {
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
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
      ],
      { stdio: "ignore" },
    );
    key = readFileSync(join(dir, "key.pem"));
    cert = readFileSync(join(dir, "cert.pem"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves gRPC over h2 with TLS to a client trusting the certificate", async () => {
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      tls: { key, cert },
    });
    const bound = await server.listen();
    expect(bound.url.startsWith("https://")).toBe(true);
    const transport = createMeshTransport({ target: bound.address, tls: { ca: cert } });
    const res = await createClient(EchoService, transport).echo({ payload: new Uint8Array([5]) });
    expect([...res.payload]).toEqual([5]);
    await transport.close();
    await server.close({ graceMs: 0 });
  });

  it("fails with UNAVAILABLE when the client does not trust the certificate", async () => {
    const server = createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl()),
      tls: { key, cert },
    });
    const bound = await server.listen();
    const transport = createMeshTransport({ target: bound.address, tls: {} });
    await expect(createClient(EchoService, transport).echo({})).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    await transport.close();
    await server.close({ graceMs: 0 });
  });
});
