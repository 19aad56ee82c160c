/**
 * Target is a parsed gRPC-style target URI (`scheme://authority/endpoint`), as
 * in gRPC's naming doc. A bare `host:port` is the static scheme.
 */
export interface Target {
  /** scheme names the resolver: `static`, `dns`, `dns+srv`, `mesh`, `etcd`, or a custom one. */
  readonly scheme: string;
  /** authority is the part between `//` and the next `/` (a DNS server for `dns`); often empty. */
  readonly authority: string;
  /** endpoint is what the resolver resolves: addresses, a host name, or a service name. */
  readonly endpoint: string;
  /** raw is the target as given. */
  readonly raw: string;
}

/**
 * parseTarget reads `scheme://authority/endpoint` or a bare `host:port`
 * (meaning `static:///host:port`). It throws a TypeError naming the bad target
 * when the scheme is malformed or the endpoint is empty, and one suggesting
 * `host:port` for an `http://` or `https://` URL (a common first guess: Connect's
 * own transports take a `baseUrl`).
 */
export function parseTarget(raw: string): Target {
  if (typeof raw !== "string" || raw.trim() === "") {
    throw new TypeError(`target ${JSON.stringify(raw)} must be a non-empty string`);
  }
  const url = /^(https?):\/\/([^/?#]+)/i.exec(raw);
  if (url !== null) {
    const tls = url[1]?.toLowerCase() === "https" ? " with the tls option" : "";
    throw new TypeError(
      `target ${JSON.stringify(raw)} is a URL, not a gRPC target: use ${JSON.stringify(url[2])}${tls} (or dns:///${url[2]}, static:///a:1,b:2, mesh:///service)`,
    );
  }
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/]*)\/(.*)$/.exec(raw);
  if (m === null) {
    if (raw.includes("://")) {
      throw new TypeError(`target ${JSON.stringify(raw)} is not scheme://authority/endpoint`);
    }
    return { scheme: "static", authority: "", endpoint: raw, raw };
  }
  const endpoint = m[3] as string;
  if (endpoint === "") {
    throw new TypeError(`target ${JSON.stringify(raw)} names no endpoint after the scheme`);
  }
  return { scheme: m[1] as string, authority: m[2] as string, endpoint, raw };
}
