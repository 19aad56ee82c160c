// --mtls: a dev CA for the demo's trust domain issues the replicas' and the
// client's SPIFFE certificates, written as PEM files into the run's temp dir
// (removed with it); the CA itself is thrown away once they are issued.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createDevCertificateAuthority, type IdentityFiles } from "../../src/index.js";
import { CLIENT_SPIFFE_ID, DEMO_TRUST_DOMAIN, REPLICA_SPIFFE_ID } from "./protocol.js";

/** DemoIdentities name the identity files of the replicas and of the client. */
export interface DemoIdentities {
  readonly trustDomain: string;
  readonly replica: IdentityFiles;
  readonly client: IdentityFiles;
}

// Long enough for any run; rotation is shown by the tests, not the demo.
const LIFETIME_MS = 24 * 60 * 60_000;

/** makeDemoIdentities issues both identities into `dir`/replica and `dir`/client. */
export async function makeDemoIdentities(dir: string): Promise<DemoIdentities> {
  const ca = await createDevCertificateAuthority({ trustDomain: DEMO_TRUST_DOMAIN });
  try {
    const [replica, client] = await Promise.all([
      ca.issue({ spiffeId: REPLICA_SPIFFE_ID, validityMs: LIFETIME_MS }),
      ca.issue({ spiffeId: CLIENT_SPIFFE_ID, validityMs: LIFETIME_MS }),
    ]);
    const write = (name: string, pem: { key: string; cert: string; ca: string }): IdentityFiles => {
      const d = join(dir, name);
      mkdirSync(d, { recursive: true, mode: 0o700 });
      const files = {
        keyFile: join(d, "key.pem"),
        certFile: join(d, "cert.pem"),
        caFile: join(d, "ca.pem"),
      };
      writeFileSync(files.keyFile, pem.key, { mode: 0o600 });
      writeFileSync(files.certFile, pem.cert);
      writeFileSync(files.caFile, pem.ca);
      return files;
    };
    return {
      trustDomain: DEMO_TRUST_DOMAIN,
      replica: write("replica", replica),
      client: write("client", client),
    };
  } finally {
    await ca.close();
  }
}
