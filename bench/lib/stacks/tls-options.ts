// TLS for the bench stacks: the stack option `tls` ("tls": server-authenticated
// TLS; "mtls": mutual TLS with SPIFFE identities; absent: h2c) and the PEM
// material that travels with it as stack options, made once per suite run by
// the public dev CA in a child process (bench/lib/stacks/make-identities.ts).

import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { StackOptions } from "../protocol.js";

/** TlsMode is how a bench connection is secured. */
export type TlsMode = "h2c" | "tls" | "mtls";

/** BenchIdentities are the PEM texts and SPIFFE IDs of the bench's server and client. */
export interface BenchIdentities {
  readonly ca: string;
  readonly serverKey: string;
  readonly serverCert: string;
  readonly serverId: string;
  readonly clientKey: string;
  readonly clientCert: string;
  readonly clientId: string;
}

let made: BenchIdentities | undefined;

/**
 * benchIdentities makes (once per process) a dev CA's server and client
 * identities. Synchronous, as a suite's `configs()` is: it runs
 * make-identities.ts in a child and reads its JSON.
 */
export function benchIdentities(): BenchIdentities {
  if (made === undefined) {
    const script = fileURLToPath(new URL("./make-identities.ts", import.meta.url));
    const out = execFileSync(process.execPath, ["--import", "tsx", "--no-warnings", script], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 60_000,
    });
    made = JSON.parse(out) as BenchIdentities;
  }
  return made;
}

/** tlsStackOptions are the stack options of a TLS mode: the mode and the PEM material. */
export function tlsStackOptions(mode: Exclude<TlsMode, "h2c">): StackOptions {
  return { tls: mode, ...benchIdentities() };
}

/** tlsModeOption reads the `tls` stack option; anything else is a configuration bug. */
export function tlsModeOption(options: StackOptions): TlsMode {
  const v = options.tls ?? "h2c";
  if (v !== "h2c" && v !== "tls" && v !== "mtls") {
    throw new TypeError(`stack option tls must be "tls" or "mtls", got ${String(v)}`);
  }
  return v;
}

/** identitiesOption reads the PEM material a TLS mode needs from the stack options. */
export function identitiesOption(options: StackOptions): BenchIdentities {
  const keys = ["ca", "serverKey", "serverCert", "serverId", "clientKey", "clientCert", "clientId"];
  for (const k of keys) {
    if (typeof options[k] !== "string") {
      throw new TypeError(`stack option tls needs the string option ${k}`);
    }
  }
  return options as unknown as BenchIdentities;
}
