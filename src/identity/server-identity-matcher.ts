import { parseSpiffeId } from "./spiffe-id.js";

/**
 * ServerIdentityMatcher decides whether a server's SPIFFE ID is one a client
 * accepts: it returns undefined to accept, or the reason it refuses
 * (`server presented spiffe://a/sa/other, want spiffe://a/sa/orders`).
 */
export type ServerIdentityMatcher = (presented: string | undefined) => string | undefined;

/**
 * createServerIdentityMatcher builds the client's check of the server
 * identity from `serverIdentities`: each entry is an exact SPIFFE ID
 * (`spiffe://a/sa/orders`) or a trust domain ID (`spiffe://a`), which accepts
 * every workload of that trust domain. Without entries the client accepts any
 * workload of its own trust domain (`ownTrustDomain()`, read at each check
 * since the client's identity may rotate into another). Entries are checked
 * here: a TypeError names a bad one.
 */
export function createServerIdentityMatcher(
  serverIdentities: readonly string[] | undefined,
  ownTrustDomain: () => string,
): ServerIdentityMatcher {
  if (serverIdentities !== undefined && !Array.isArray(serverIdentities)) {
    throw new TypeError("serverIdentities must be an array of SPIFFE IDs");
  }
  if (serverIdentities !== undefined && serverIdentities.length === 0) {
    throw new TypeError("serverIdentities must name at least one SPIFFE ID or trust domain");
  }
  const exact = new Set<string>();
  const domains = new Set<string>();
  for (const entry of serverIdentities ?? []) {
    let id: ReturnType<typeof parseSpiffeId>;
    try {
      id = parseSpiffeId(entry);
    } catch (e) {
      throw new TypeError(`serverIdentities: ${(e as Error).message}`);
    }
    if (id.path === "") domains.add(id.trustDomain);
    else exact.add(id.id);
  }
  const wanted = (): string => {
    if (serverIdentities === undefined) return `a workload of trust domain ${ownTrustDomain()}`;
    const parts = [...exact, ...[...domains].map((d) => `a workload of trust domain ${d}`)];
    return parts.length === 1 ? (parts[0] as string) : `one of ${parts.join(", ")}`;
  };
  return (presented) => {
    if (presented !== undefined) {
      const td = parseSpiffeId(presented).trustDomain;
      if (serverIdentities === undefined) {
        if (td === ownTrustDomain()) return undefined;
      } else if (exact.has(presented) || domains.has(td)) {
        return undefined;
      }
    }
    return `server presented ${presented ?? "no SPIFFE ID"}, want ${wanted()}`;
  };
}
