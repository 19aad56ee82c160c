import type { DnsRecord } from "./dns-client.js";

/** SrvRecord is a DnsRecord of type SRV. */
export type SrvRecord = Extract<DnsRecord, { type: "SRV" }>;

/**
 * srvEndpointWeight maps an SRV weight (0..65535) to an endpoint weight
 * (1..65535). RFC 2782 gives weight-0 targets "a very small chance" of being
 * picked when others have weight; the smallest endpoint weight, 1, is the
 * closest a weighted balancer can come, so 0 becomes 1.
 */
export function srvEndpointWeight(weight: number): number {
  return Math.min(65535, Math.max(1, Math.floor(weight)));
}

/**
 * groupSrvByPriority splits usable SRV records into priority groups, lowest
 * priority (most preferred, RFC 2782) first. Records whose target is "."
 * ("decidedly not available") are left out, so an answer made only of them
 * yields no groups.
 */
export function groupSrvByPriority(records: readonly SrvRecord[]): SrvRecord[][] {
  const groups = new Map<number, SrvRecord[]>();
  for (const r of records) {
    if (r.target === ".") continue;
    const g = groups.get(r.priority);
    if (g === undefined) groups.set(r.priority, [r]);
    else g.push(r);
  }
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g);
}

/** formatSrvRecord renders a record as a zone-file line, for bad-record events. */
export function formatSrvRecord(r: SrvRecord): string {
  const target = r.target === "." ? "." : `${r.target}.`;
  return `${r.name} ${r.ttl} IN SRV ${r.priority} ${r.weight} ${r.port} ${target}`;
}
