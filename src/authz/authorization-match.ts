/**
 * The matchers an authorization rule is compiled into: string patterns for
 * principals and methods (exact, prefix, suffix, any), trust domains and
 * request header conditions. Each compile function validates its input and
 * names the bad field (`rules[2].methods[0]`), so a policy file with a typo
 * fails loudly instead of matching something else.
 * @module
 */

/** StringMatcher tests one string; compiled once, run per call. */
export type StringMatcher = (value: string) => boolean;

/** HeaderCondition is a rule's condition on one request header. */
export interface HeaderCondition {
  /** name is the header name (case-insensitive; multiple values arrive joined by ", "). */
  readonly name: string;
  /** exact matches when the header's value equals this. */
  readonly exact?: string;
  /** prefix matches when the header's value starts with this. */
  readonly prefix?: string;
  /** present: true matches when the header is sent, false when it is absent. */
  readonly present?: boolean;
}

/** HeaderReader is the part of `Headers` a decision reads. */
export interface HeaderReader {
  get(name: string): string | null;
}

/** HeaderMatcher tests a request's headers. */
export type HeaderMatcher = (header: HeaderReader) => boolean;

const ANY: StringMatcher = () => true;

/**
 * compilePattern turns an Istio-style string pattern into a matcher: `*`
 * matches anything, `abc*` is a prefix, `*abc` a suffix, anything else must
 * match exactly. A `*` anywhere else is rejected (RangeError naming `field`).
 */
export function compilePattern(pattern: unknown, field: string): StringMatcher {
  if (typeof pattern !== "string") {
    throw new TypeError(`${field} ${JSON.stringify(pattern)} must be a string`);
  }
  if (pattern === "") {
    throw new RangeError(`${field} "" must not be empty`);
  }
  if (pattern === "*") return ANY;
  const inner = pattern.slice(1, -1);
  if (inner.includes("*") || (pattern.startsWith("*") && pattern.endsWith("*"))) {
    throw new RangeError(
      `${field} ${JSON.stringify(pattern)} may have one "*", at its start or its end`,
    );
  }
  if (pattern.endsWith("*")) {
    const prefix = pattern.slice(0, -1);
    return (v) => v.startsWith(prefix);
  }
  if (pattern.startsWith("*")) {
    const suffix = pattern.slice(1);
    return (v) => v.endsWith(suffix);
  }
  return (v) => v === pattern;
}

/** anyOf is true when one of the matchers is. */
export function anyOf(matchers: readonly StringMatcher[]): StringMatcher {
  if (matchers.length === 1) return matchers[0] as StringMatcher;
  return (v) => {
    for (const m of matchers) if (m(v)) return true;
    return false;
  };
}

const SPIFFE_SCHEME = "spiffe://";

/**
 * compilePrincipal compiles a principal pattern. Principals are SPIFFE IDs:
 * `spiffe://a/ns/default/sa/orders` exactly, `spiffe://a/ns/default/*` by
 * prefix, a leading `*` (then `/sa/orders`) by suffix, `*` for any
 * authenticated peer. Istio's scheme-less form (`a/ns/default/sa/orders`) is
 * read as `spiffe://` + it.
 */
export function compilePrincipal(pattern: unknown, field: string): StringMatcher {
  if (typeof pattern === "string" && pattern !== "" && !pattern.startsWith("*")) {
    if (pattern.includes("://") && !pattern.startsWith(SPIFFE_SCHEME)) {
      throw new RangeError(`${field} ${JSON.stringify(pattern)} must be a spiffe:// ID pattern`);
    }
    if (!pattern.startsWith(SPIFFE_SCHEME)) {
      return compilePattern(SPIFFE_SCHEME + pattern, field);
    }
  }
  return compilePattern(pattern, field);
}

// A trust domain is a DNS-like name (SPIFFE: lower-case letters, digits, ".", "-", "_").
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/** compileTrustDomain checks a trust domain name (`a`, `cluster.local`); matching is exact. */
export function compileTrustDomain(name: unknown, field: string): string {
  if (typeof name !== "string") {
    throw new TypeError(`${field} ${JSON.stringify(name)} must be a string`);
  }
  if (!TRUST_DOMAIN.test(name)) {
    throw new RangeError(
      `${field} ${JSON.stringify(name)} must be a trust domain (lower-case letters, digits, ".", "-", "_")`,
    );
  }
  return name;
}

// `pkg.Service/Method` with protobuf identifiers; a leading "/" (the HTTP path) is allowed.
const METHOD_PATH = /^[A-Za-z_][\w.]*\/[A-Za-z_]\w*$/;
const METHOD_CHARS = /^[\w./]+$/;

/**
 * compileMethod compiles a method pattern over `pkg.Service/Method`:
 * `pkg.Service/Method` exactly, `pkg.Service/*` (a service), `pkg.*` (a
 * package), a leading `*` then `/Method` (a method name in any service) or
 * `*`. A leading `/`
 * is dropped, so HTTP paths work as patterns too.
 */
export function compileMethod(pattern: unknown, field: string): StringMatcher {
  if (typeof pattern === "string" && pattern.startsWith("/")) {
    return compileMethod(pattern.slice(1), field);
  }
  const matcher = compilePattern(pattern, field);
  const p = pattern as string;
  if (p === "*") return matcher;
  const body = p.startsWith("*") ? p.slice(1) : p.endsWith("*") ? p.slice(0, -1) : p;
  const exact = body === p;
  if (
    (exact && !METHOD_PATH.test(body)) ||
    !METHOD_CHARS.test(body) ||
    (body.match(/\//g)?.length ?? 0) > 1
  ) {
    throw new RangeError(
      `${field} ${JSON.stringify(p)} must be "pkg.Service/Method", "pkg.Service/*", "pkg.*", "*/Method" or "*"`,
    );
  }
  return matcher;
}

// RFC 9110 token, lower-cased; pseudo-headers such as :authority are not visible to interceptors.
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
const HEADER_FIELDS = new Set(["name", "exact", "prefix", "present"]);

/** compileHeader validates a HeaderCondition and compiles it. */
export function compileHeader(cond: unknown, field: string): HeaderMatcher {
  if (typeof cond !== "object" || cond === null || Array.isArray(cond)) {
    throw new TypeError(`${field} ${JSON.stringify(cond)} must be an object`);
  }
  for (const key of Object.keys(cond)) {
    if (!HEADER_FIELDS.has(key)) {
      throw new TypeError(`${field} has unknown field ${JSON.stringify(key)}`);
    }
  }
  const c = cond as HeaderCondition;
  if (typeof c.name !== "string") {
    throw new TypeError(`${field}.name ${JSON.stringify(c.name)} must be a string`);
  }
  const name = c.name.toLowerCase();
  if (!HEADER_NAME.test(name)) {
    throw new RangeError(`${field}.name ${JSON.stringify(c.name)} must be a header name`);
  }
  const given = (["exact", "prefix", "present"] as const).filter((k) => c[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(
      `${field} (header ${JSON.stringify(name)}) needs exactly one of exact, prefix, present`,
    );
  }
  if (c.present !== undefined) {
    if (typeof c.present !== "boolean") {
      throw new TypeError(`${field}.present ${JSON.stringify(c.present)} must be a boolean`);
    }
    const want = c.present;
    return (h) => (h.get(name) !== null) === want;
  }
  const key = given[0] as "exact" | "prefix";
  const value = c[key];
  if (typeof value !== "string") {
    throw new TypeError(`${field}.${key} ${JSON.stringify(value)} must be a string`);
  }
  if (key === "exact") return (h) => h.get(name) === value;
  return (h) => h.get(name)?.startsWith(value) === true;
}
