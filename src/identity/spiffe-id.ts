/**
 * SpiffeId is a parsed SPIFFE ID (`spiffe://<trust-domain>/<path>`), the
 * workload identity an X.509-SVID carries in its URI SAN.
 */
export interface SpiffeId {
  /** trustDomain is the host part, e.g. `a` in `spiffe://a/ns/default/sa/orders`. */
  readonly trustDomain: string;
  /** path is everything after the trust domain (`/ns/default/sa/orders`), "" for a trust domain ID. */
  readonly path: string;
  /** id is the whole ID, as given. */
  readonly id: string;
}

// The SPIFFE ID spec (SPIFFE-ID.md §2): 2048 bytes at most, trust domain
// 255 at most (a DNS name's limit).
const MAX_ID_BYTES = 2048;
const MAX_TRUST_DOMAIN_BYTES = 255;
const PREFIX = "spiffe://";
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;

/**
 * spiffeIdProblem says why `value` is not a valid SPIFFE ID, or undefined
 * when it is. The rules are the SPIFFE ID spec's: scheme `spiffe`, a
 * lower-case trust domain of `[a-z0-9._-]` (no port, no user info), an
 * optional path of non-empty `[a-zA-Z0-9._-]` segments that are not `.` or
 * `..`, no trailing slash, query or fragment.
 */
export function spiffeIdProblem(value: unknown): string | undefined {
  if (typeof value !== "string") return "it is not a string";
  if (value.length > MAX_ID_BYTES) return `it is longer than ${MAX_ID_BYTES} bytes`;
  if (!value.startsWith(PREFIX)) {
    return value.toLowerCase().startsWith(PREFIX)
      ? "the scheme must be lower-case spiffe"
      : "it does not start with spiffe://";
  }
  const rest = value.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  if (trustDomain === "") return "the trust domain is empty";
  if (trustDomain.length > MAX_TRUST_DOMAIN_BYTES) {
    return `the trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`;
  }
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    if (trustDomain.includes(":")) return "the trust domain must not have a port";
    if (trustDomain.includes("@")) return "the trust domain must not have user info";
    return `the trust domain ${JSON.stringify(trustDomain)} has characters outside [a-z0-9._-]`;
  }
  if (path === "") return undefined;
  if (path.includes("?")) return "it must not have a query";
  if (path.includes("#")) return "it must not have a fragment";
  if (path.endsWith("/")) return "the path must not end with /";
  for (const segment of path.slice(1).split("/")) {
    if (segment === "") return "the path has an empty segment";
    if (segment === "." || segment === "..") return `the path has a ${segment} segment`;
    if (!SEGMENT_CHARS.test(segment)) {
      return `the path segment ${JSON.stringify(segment)} has characters outside [a-zA-Z0-9._-]`;
    }
  }
  return undefined;
}

/**
 * parseSpiffeId parses a SPIFFE ID; it throws a TypeError naming the value
 * and the rule it breaks when it is not one.
 */
export function parseSpiffeId(value: string): SpiffeId {
  const problem = spiffeIdProblem(value);
  if (problem !== undefined) {
    throw new TypeError(`${JSON.stringify(value)} is not a SPIFFE ID: ${problem}`);
  }
  const rest = value.slice(PREFIX.length);
  const slash = rest.indexOf("/");
  return {
    trustDomain: slash < 0 ? rest : rest.slice(0, slash),
    path: slash < 0 ? "" : rest.slice(slash),
    id: value,
  };
}

/** isSpiffeId says whether `value` is a valid SPIFFE ID. */
export function isSpiffeId(value: unknown): value is string {
  return spiffeIdProblem(value) === undefined;
}

/** trustDomainOf returns the trust domain of a valid SPIFFE ID, or undefined. */
export function trustDomainOf(value: string): string | undefined {
  return isSpiffeId(value) ? parseSpiffeId(value).trustDomain : undefined;
}
