/**
 * W3C `tracestate` handling (Trace Context Level 1/2, section 3.3): parse,
 * validate and re-emit the vendor list unchanged in order, so that calls made
 * through the mesh carry other vendors' state on.
 */

/** TRACESTATE_MAX_MEMBERS is the spec's limit; a longer list is invalid and dropped. */
export const TRACESTATE_MAX_MEMBERS = 32;

/**
 * TRACESTATE_MAX_LENGTH is what we propagate at most. The spec asks vendors to
 * propagate at least 512 characters (commas included, optional white space
 * not) and says how to cut a longer list: members over 128 characters go
 * first, then whole members from the end.
 */
export const TRACESTATE_MAX_LENGTH = 512;

/** Members longer than this are the first to go when the list is too long. */
const LONG_MEMBER = 128;

// key = simple-key / multi-tenant-key (lowercase; "@" splits tenant and system).
const SIMPLE_KEY = /^[a-z][a-z0-9_\-*/]{0,255}$/;
const MULTI_TENANT_KEY = /^[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}$/;
// value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-7E minus "," and "=".
const VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * normalizeTracestate returns the tracestate to propagate for a received
 * header value: members in their order, optional white space and empty
 * members removed, cut to TRACESTATE_MAX_LENGTH. It returns undefined when
 * there is nothing to propagate or the header is invalid: a bad key or value,
 * a duplicate key, or more than 32 members (the spec's own test suite expects
 * such headers to be discarded whole). Never throws.
 */
export function normalizeTracestate(value: string | null | undefined): string | undefined {
  if (typeof value !== "string" || value === "") {
    return undefined;
  }
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of value.split(",")) {
    const member = raw.replace(/^[ \t]+|[ \t]+$/g, "");
    if (member === "") {
      continue; // empty list-members are allowed and ignored
    }
    const eq = member.indexOf("=");
    if (eq <= 0) {
      return undefined;
    }
    const key = member.slice(0, eq);
    const val = member.slice(eq + 1);
    if (!(SIMPLE_KEY.test(key) || MULTI_TENANT_KEY.test(key)) || !VALUE.test(val)) {
      return undefined;
    }
    if (keys.has(key)) {
      return undefined;
    }
    keys.add(key);
    members.push(member);
    if (members.length > TRACESTATE_MAX_MEMBERS) {
      return undefined;
    }
  }
  if (members.length === 0) {
    return undefined;
  }
  return truncateTracestate(members);
}

/** truncateTracestate joins members, cutting as the spec says when too long. */
function truncateTracestate(members: readonly string[]): string | undefined {
  let kept = [...members];
  if (joinedLength(kept) <= TRACESTATE_MAX_LENGTH) {
    return kept.join(",");
  }
  // Long members go first, from the end; then any member from the end.
  for (let i = kept.length - 1; i >= 0 && joinedLength(kept) > TRACESTATE_MAX_LENGTH; i--) {
    if ((kept[i]?.length ?? 0) > LONG_MEMBER) {
      kept = [...kept.slice(0, i), ...kept.slice(i + 1)];
    }
  }
  while (kept.length > 0 && joinedLength(kept) > TRACESTATE_MAX_LENGTH) {
    kept = kept.slice(0, -1);
  }
  return kept.length === 0 ? undefined : kept.join(",");
}

function joinedLength(members: readonly string[]): number {
  let n = Math.max(0, members.length - 1);
  for (const m of members) n += m.length;
  return n;
}
