import { formatAddress } from "./address.js";
import type { DnsClient, DnsRecord } from "./dns-client.js";
import { formatSrvRecord, groupSrvByPriority, srvEndpointWeight } from "./dns-srv.js";
import type { DnsTarget } from "./dns-target.js";
import { createEndpoint, type Endpoint } from "./endpoint.js";

/** DnsBadRecord is a record a lookup skipped, and why. */
export interface DnsBadRecord {
  readonly record: string;
  readonly reason: string;
}

/**
 * DnsLookup is the result of one resolution of a target: endpoints sorted by
 * address (so two lookups of the same records compare equal), the smallest
 * TTL that went into them in seconds (undefined when the answer carried
 * none), and the records that were skipped.
 */
export interface DnsLookup {
  readonly endpoints: readonly Endpoint[];
  readonly ttlSeconds: number | undefined;
  readonly badRecords: readonly DnsBadRecord[];
}

/**
 * lookupDnsTarget resolves a target once. An empty answer or NXDOMAIN is a
 * result (no endpoints); a failed query (timeout, SERVFAIL) rejects the whole
 * lookup, so the caller can keep its last-known endpoints instead of
 * publishing a partial set.
 *
 * For SRV targets it follows RFC 2782: the lowest-priority group whose targets
 * resolve to at least one address wins; a group whose targets all resolve to
 * nothing falls through to the next. Each address of a target becomes one
 * endpoint with the record's port and weight (srvEndpointWeight); two records
 * reaching the same address:port add their weights. Targets are looked up
 * afresh rather than trusted from the additional section, whose TTLs and
 * completeness vary between servers.
 */
export async function lookupDnsTarget(
  client: DnsClient,
  target: DnsTarget,
  signal?: AbortSignal,
): Promise<DnsLookup> {
  // Once one query fails the lookup has failed: stop its sibling queries
  // rather than let them run on to their own timeouts.
  const done = new AbortController();
  try {
    return await lookup(
      client,
      target,
      signal === undefined ? done.signal : AbortSignal.any([signal, done.signal]),
    );
  } finally {
    done.abort();
  }
}

async function lookup(
  client: DnsClient,
  target: DnsTarget,
  signal: AbortSignal,
): Promise<DnsLookup> {
  const bad: DnsBadRecord[] = [];
  if (target.kind === "host") {
    if (target.literal) {
      return {
        endpoints: [createEndpoint(formatAddress(target.host, target.port))],
        ttlSeconds: undefined,
        badRecords: [],
      };
    }
    const { addresses, ttlSeconds } = await lookupAddresses(client, target.host, bad, signal);
    const endpoints = new Map<string, Endpoint>();
    for (const ip of addresses) {
      const address = formatAddress(ip, target.port);
      endpoints.set(address, createEndpoint(address));
    }
    return { endpoints: sortByAddress(endpoints), ttlSeconds, badRecords: bad };
  }

  const srv = await client.query(target.name, "SRV", signal);
  let ttl = srv.ttlSeconds;
  const usable = [];
  for (const r of srv.records) {
    // "." records are RFC 2782's "not available" marker, not bad records.
    if (r.type !== "SRV" || r.target === ".") continue;
    if (r.port < 1 || r.port > 65535) {
      bad.push({ record: formatSrvRecord(r), reason: `port ${r.port} is not in 1..65535` });
      continue;
    }
    usable.push(r);
  }
  const resolved = new Map<string, Promise<{ addresses: string[]; ttlSeconds?: number }>>();
  const resolve = (host: string) => {
    let p = resolved.get(host.toLowerCase());
    if (p === undefined) {
      p = lookupAddresses(client, host, bad, signal);
      resolved.set(host.toLowerCase(), p);
    }
    return p;
  };
  for (const group of groupSrvByPriority(usable)) {
    const results = await Promise.all(group.map((r) => resolve(r.target)));
    const endpoints = new Map<string, Endpoint>();
    group.forEach((r, i) => {
      const result = results[i] as { addresses: string[]; ttlSeconds?: number };
      ttl = minTtl(ttl, result.ttlSeconds);
      if (result.addresses.length === 0) {
        bad.push({
          record: formatSrvRecord(r),
          reason: `target ${r.target} has no A or AAAA records`,
        });
      }
      for (const ip of result.addresses) {
        const address = formatAddress(ip, r.port);
        const weight = srvEndpointWeight(r.weight) + (endpoints.get(address)?.weight ?? 0);
        endpoints.set(address, createEndpoint(address, { weight: Math.min(65535, weight) }));
      }
    });
    if (endpoints.size > 0) {
      return { endpoints: sortByAddress(endpoints), ttlSeconds: ttl, badRecords: bad };
    }
  }
  return { endpoints: [], ttlSeconds: ttl, badRecords: bad };
}

async function lookupAddresses(
  client: DnsClient,
  host: string,
  bad: DnsBadRecord[],
  signal: AbortSignal,
): Promise<{ addresses: string[]; ttlSeconds?: number }> {
  // Both families at once: grpc-js and grpc-go connect to either, and a
  // sequential AAAA would double the latency of every resolution.
  const [a, aaaa] = await Promise.all([
    client.query(host, "A", signal),
    client.query(host, "AAAA", signal),
  ]);
  const addresses = new Set<string>();
  for (const r of [...a.records, ...aaaa.records]) {
    if (r.type !== "A" && r.type !== "AAAA") continue;
    const why = unusableAddress(r.address);
    if (why !== undefined) {
      bad.push({ record: formatAddressRecord(r), reason: why });
      continue;
    }
    addresses.add(r.address);
  }
  const ttlSeconds = minTtl(a.ttlSeconds, aaaa.ttlSeconds);
  return ttlSeconds === undefined
    ? { addresses: [...addresses] }
    : { addresses: [...addresses], ttlSeconds };
}

function unusableAddress(ip: string): string | undefined {
  // Both mean "any address": nothing can be dialled there, and a client that
  // tried would reach itself.
  if (ip === "0.0.0.0" || /^[0:]+$/.test(ip)) return "unspecified address";
  if (/^(22[4-9]|23\d)\./.test(ip) || /^ff/i.test(ip)) return "multicast address";
  return undefined;
}

function formatAddressRecord(r: Extract<DnsRecord, { type: "A" | "AAAA" }>): string {
  return `${r.name} ${r.ttl} IN ${r.type} ${r.address}`;
}

function minTtl(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

function sortByAddress(endpoints: Map<string, Endpoint>): Endpoint[] {
  return [...endpoints.values()].sort((x, y) =>
    x.address < y.address ? -1 : x.address > y.address ? 1 : 0,
  );
}
