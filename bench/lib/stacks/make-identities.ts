// Run as a child by bench-identities.ts: makes a throw-away dev CA and one
// server and one client SPIFFE identity, prints them as JSON on stdout, and
// removes the CA (its key never leaves this process).

import { createDevCertificateAuthority } from "../../../src/index.js";

const DAY_MS = 24 * 60 * 60_000;

const ca = await createDevCertificateAuthority({ trustDomain: "bench.local" });
try {
  const [server, client] = await Promise.all([
    // grpc-js and plain-TLS clients check the host name: the server's leaf names it too.
    ca.issue({
      spiffeId: "/sa/echo-server",
      validityMs: DAY_MS,
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    }),
    ca.issue({ spiffeId: "/sa/echo-client", validityMs: DAY_MS }),
  ]);
  process.stdout.write(
    JSON.stringify({
      ca: ca.ca,
      serverKey: server.key,
      serverCert: server.cert,
      serverId: server.spiffeId,
      clientKey: client.key,
      clientCert: client.cert,
      clientId: client.spiffeId,
    }),
  );
} finally {
  await ca.close();
}
