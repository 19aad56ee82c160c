import { isIP } from "node:net";
import type { HostPort } from "./address.js";

/**
 * DEFAULT_DNS_TARGET_PORT is the port of a `dns:` target that names none. gRPC's
 * naming doc (doc/naming.md) fixes it at 443, and we match so that one target
 * string means the same thing to grpc-js, grpc-go and connect-mesh.
 */
export const DEFAULT_DNS_TARGET_PORT = 443;

/** DEFAULT_DNS_SERVER_PORT is the port of a DNS server named without one. */
export const DEFAULT_DNS_SERVER_PORT = 53;

/**
 * DnsTarget is a parsed `dns:` or `dns+srv:` target.
 * - `host`: resolve `host`'s A and AAAA records; every address gets `port`.
 *   `literal` is true when `host` is already an IP address (nothing to query).
 * - `srv`: resolve `name`'s SRV records (RFC 2782), then each SRV target's
 *   A and AAAA records; ports and weights come from the SRV records.
 * `server`, from the target's authority, is the DNS server to ask instead of
 * the configured ones (`dns://10.0.0.2:53/orders.internal:50051`).
 */
export type DnsTarget =
  | {
      readonly kind: "host";
      readonly host: string;
      readonly port: number;
      readonly literal: boolean;
      readonly server?: HostPort;
    }
  | { readonly kind: "srv"; readonly name: string; readonly server?: HostPort };

/**
 * parseDnsTarget reads a target in gRPC's naming syntax,
 * `dns:[//authority/]host[:port]`, or its SRV variant
 * `dns+srv:[//authority/]_service._proto.name`. The authority, when present,
 * is a DNS server `ip[:port]` (port 53 by default). A `dns:` host without a
 * port gets DEFAULT_DNS_TARGET_PORT (443); IPv6 literals go in brackets. An
 * SRV target takes no port: ports come from the records. Throws a TypeError
 * quoting the target and saying what is wrong with it.
 */
export function parseDnsTarget(target: string): DnsTarget {
  const bad = (why: string): TypeError =>
    new TypeError(`dns target ${JSON.stringify(target)}: ${why}`);
  if (typeof target !== "string") {
    throw new TypeError(`dns target ${String(target)} must be a string`);
  }
  const m = /^(dns|dns\+srv):(.*)$/s.exec(target);
  if (m === null) {
    throw bad('scheme must be "dns:" or "dns+srv:"');
  }
  const scheme = m[1] as "dns" | "dns+srv";
  let rest = m[2] as string;
  if (/[?#]/.test(rest)) {
    throw bad("query strings and fragments are not supported");
  }
  let server: HostPort | undefined;
  if (rest.startsWith("//")) {
    const slash = rest.indexOf("/", 2);
    if (slash < 0) {
      throw bad('expected "//authority/" before the name ("dns:///name" with no authority)');
    }
    const authority = rest.slice(2, slash);
    rest = rest.slice(slash + 1);
    if (authority !== "") {
      const parsed = parseDnsServer(authority);
      if (typeof parsed === "string") throw bad(`authority ${parsed}`);
      server = parsed;
    }
  }
  if (rest === "") {
    throw bad("no host name");
  }
  if (scheme === "dns+srv") {
    if (/:\d*$/.test(rest) || rest.startsWith("[")) {
      throw bad(`SRV name ${JSON.stringify(rest)} takes no port: ports come from the SRV records`);
    }
    const why = checkDnsName(rest);
    if (why !== undefined) throw bad(why);
    const name = stripDot(rest);
    return server === undefined ? { kind: "srv", name } : { kind: "srv", name, server };
  }
  const hp = splitHostPort(rest);
  if (typeof hp === "string") throw bad(hp);
  const { host, port } = hp;
  const literal = isIP(host) !== 0;
  if (!literal) {
    const why = checkDnsName(host);
    if (why !== undefined) throw bad(why);
  }
  const name = literal ? host : stripDot(host);
  return server === undefined
    ? { kind: "host", host: name, port, literal }
    : { kind: "host", host: name, port, literal, server };
}

/**
 * parseDnsServer reads a DNS server address as `dns.getServers()` writes it:
 * `1.2.3.4`, `1.2.3.4:5353`, `::1`, `[::1]:5353`. It returns the host and
 * port, or a string saying why the value is bad. Only IP addresses are
 * accepted: a server named by host name would need DNS to find DNS.
 * @private
 */
export function parseDnsServer(value: string): HostPort | string {
  if (isIP(value) !== 0) {
    return { host: value, port: DEFAULT_DNS_SERVER_PORT };
  }
  const hp = splitHostPort(value, DEFAULT_DNS_SERVER_PORT);
  if (typeof hp === "string") return `${JSON.stringify(value)}: ${hp}`;
  if (isIP(hp.host) === 0) {
    return `${JSON.stringify(value)} is not an IP address with an optional port`;
  }
  return hp;
}

function splitHostPort(value: string, defaultPort = DEFAULT_DNS_TARGET_PORT): HostPort | string {
  let host: string;
  let portText: string | undefined;
  if (value.startsWith("[")) {
    const m = /^\[([^\]]*)\](?::(.*))?$/s.exec(value);
    if (m === null) return `${JSON.stringify(value)} is not [ipv6] or [ipv6]:port`;
    host = m[1] as string;
    portText = m[2];
    if (isIP(host) !== 6) return `${JSON.stringify(host)} in brackets is not an IPv6 address`;
  } else {
    const colons = value.split(":").length - 1;
    if (colons > 1) {
      // A bare IPv6 address is ambiguous with a port: gRPC requires brackets too.
      return `${JSON.stringify(value)}: write IPv6 addresses in brackets ([::1]:50051)`;
    }
    const i = value.indexOf(":");
    host = i < 0 ? value : value.slice(0, i);
    portText = i < 0 ? undefined : value.slice(i + 1);
  }
  if (host === "") return `no host before port in ${JSON.stringify(value)}`;
  if (portText === undefined) return { host, port: defaultPort };
  if (!/^\d{1,5}$/.test(portText)) {
    return `port ${JSON.stringify(portText)} is not a number in 1..65535`;
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) return `port ${port} is not in 1..65535`;
  return { host, port };
}

// RFC 1035 limits, relaxed as resolvers are in practice: underscores are
// allowed (SRV owner names need them) and labels may start with a digit.
function checkDnsName(name: string): string | undefined {
  const n = stripDot(name);
  if (n.length === 0) return "no host name";
  if (n.length > 253) return `name of ${n.length} characters is longer than 253`;
  for (const label of n.split(".")) {
    if (label === "") return `name ${JSON.stringify(name)} has an empty label`;
    if (label.length > 63) return `label ${JSON.stringify(label)} is longer than 63 characters`;
    if (!/^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)) {
      return `label ${JSON.stringify(label)} is not letters, digits, "-" and "_"`;
    }
  }
  return undefined;
}

function stripDot(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}
