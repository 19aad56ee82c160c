import { Code } from "@connectrpc/connect";
import { type PeerIdentity, principalOf } from "../call/peer-identity.js";
import {
  anyOf,
  compileHeader,
  compileMethod,
  compilePrincipal,
  compileTrustDomain,
  type HeaderCondition,
  type HeaderMatcher,
  type HeaderReader,
} from "./authorization-match.js";

/** AuthorizationAction is what a rule does to the calls it matches. */
export type AuthorizationAction = "ALLOW" | "DENY";

/** AuthorizationDefault is what happens to a call no rule matched. */
export type AuthorizationDefault = "allow" | "deny";

/**
 * AuthorizationRule is one Istio-AuthorizationPolicy-like rule. A rule
 * matches a call when every condition it sets holds (AND); a list condition
 * holds when any entry matches (OR); a rule with no condition matches every
 * call. Patterns (principals, methods) are exact, `prefix*`, `*suffix` or
 * `*`.
 */
export interface AuthorizationRule {
  /** name identifies the rule in denials, logs and events; unique within a policy. */
  readonly name: string;
  /** action is `ALLOW` or `DENY`. */
  readonly action: AuthorizationAction;
  /**
   * principals match the peer's SPIFFE ID (`spiffe://a/ns/default/sa/orders`,
   * `spiffe://a/ns/default/*`, `*` for any authenticated peer; Istio's
   * `a/ns/default/sa/orders` works too). A peer without identity matches none.
   */
  readonly principals?: readonly string[];
  /** notPrincipals holds when the peer's principal matches none of these (a peer without identity always). */
  readonly notPrincipals?: readonly string[];
  /** trustDomains match the peer's trust domain exactly (`a`, `cluster.local`). */
  readonly trustDomains?: readonly string[];
  /** notTrustDomains holds when the peer has no trust domain or one not listed. */
  readonly notTrustDomains?: readonly string[];
  /**
   * methods match `pkg.Service/Method`: exact, `pkg.Service/*`, `pkg.*`, a
   * leading `*` then `/Method` (that method in any service), or `*`.
   */
  readonly methods?: readonly string[];
  /** notMethods holds when the method matches none of these. */
  readonly notMethods?: readonly string[];
  /** headers must all hold: a request header equal to, starting with, present or absent. */
  readonly headers?: readonly HeaderCondition[];
}

/** AuthorizationPolicyOptions are the rules and the default of a policy (also the policy file's JSON). */
export interface AuthorizationPolicyOptions {
  /** rules are evaluated DENY rules first, then ALLOW rules, in the order given; default none. */
  readonly rules?: readonly AuthorizationRule[];
  /** defaultAction decides calls no rule matched; default "deny" (deny by default, fail closed). */
  readonly defaultAction?: AuthorizationDefault;
}

/** AuthorizationRequest is what a decision looks at: the peer, the method and the request headers. */
export interface AuthorizationRequest {
  /** peer is the caller's verified identity (ANONYMOUS_PEER without one). */
  readonly peer: PeerIdentity;
  /** service is the fully-qualified service name, `pkg.Service`. */
  readonly service: string;
  /** method is the method name, `Method`. */
  readonly method: string;
  /** header are the request headers. */
  readonly header: HeaderReader;
}

/**
 * AuthorizationDecision is a policy's verdict on one call. `rule` names the
 * rule that decided (none when the default did). Denials carry the code:
 * UNAUTHENTICATED when the call has no peer identity and an identity is what
 * it lacks, PERMISSION_DENIED otherwise.
 */
export type AuthorizationDecision =
  | {
      readonly allowed: true;
      readonly code?: undefined;
      readonly rule?: string | undefined;
      readonly reason: string;
    }
  | {
      readonly allowed: false;
      readonly code: Code.PermissionDenied | Code.Unauthenticated;
      readonly rule?: string | undefined;
      readonly reason: string;
    };

/**
 * AuthorizationPolicy is a compiled, immutable policy. `decide` is pure and
 * synchronous: the same request gets the same decision from the same policy.
 */
export interface AuthorizationPolicy {
  /** rules are the validated rules, frozen, in the order given. */
  readonly rules: readonly AuthorizationRule[];
  /** defaultAction decides calls no rule matched. */
  readonly defaultAction: AuthorizationDefault;
  /** decide evaluates DENY rules, then ALLOW rules, then the default. */
  decide(request: AuthorizationRequest): AuthorizationDecision;
}

/** AUTHORIZATION_POLICY_DEFAULTS are the defaults documented on AuthorizationPolicyOptions. */
export const AUTHORIZATION_POLICY_DEFAULTS = Object.freeze({
  // Fail closed: a policy that forgot a rule denies rather than exposes.
  defaultAction: "deny" as AuthorizationDefault,
});

interface CompiledRule {
  readonly name: string;
  // identity: the rule looks at who calls (principals or trust domains).
  readonly identity: boolean;
  // The conditions in three parts, cheapest first (a header lookup costs more
  // than a string compare); apart, so a default denial can tell whether an
  // identity would have let an anonymous call in.
  readonly methodMatches: (path: string) => boolean;
  readonly peerMatches: (principal: string | undefined, trustDomain: string | undefined) => boolean;
  readonly headersMatch: (header: HeaderReader) => boolean;
  readonly decision: AuthorizationDecision;
}

const POLICY_FIELDS = new Set(["rules", "defaultAction"]);
const RULE_FIELDS = new Set([
  "name",
  "action",
  "principals",
  "notPrincipals",
  "trustDomains",
  "notTrustDomains",
  "methods",
  "notMethods",
  "headers",
]);
const RULE_NAME = /^[A-Za-z0-9][\w.:-]{0,127}$/;
const policies = new WeakSet<object>();

/**
 * createAuthorizationPolicy validates and compiles a policy. Evaluation:
 * a matching DENY rule denies; otherwise a matching ALLOW rule allows;
 * otherwise `defaultAction` decides. A denied call without a peer identity
 * gets UNAUTHENTICATED when the denial is about identity (a DENY rule that
 * matched through `notPrincipals`/`notTrustDomains`, or a default denial
 * where an ALLOW rule asking for an identity matched everything else), and
 * PERMISSION_DENIED otherwise.
 *
 * Bad input throws when the policy is built: TypeError for wrong types and
 * unknown fields, RangeError for bad values, naming the field
 * (`rules[1].methods[0]`).
 */
export function createAuthorizationPolicy(
  options: AuthorizationPolicyOptions = {},
): AuthorizationPolicy {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`authorization policy ${JSON.stringify(options)} must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!POLICY_FIELDS.has(key)) {
      throw new TypeError(`authorization policy has unknown field ${JSON.stringify(key)}`);
    }
  }
  const defaultAction = options.defaultAction ?? AUTHORIZATION_POLICY_DEFAULTS.defaultAction;
  if (defaultAction !== "allow" && defaultAction !== "deny") {
    throw new RangeError(
      `defaultAction ${JSON.stringify(defaultAction)} must be "allow" or "deny"`,
    );
  }
  const given = options.rules ?? [];
  if (!Array.isArray(given)) {
    throw new TypeError(`rules ${JSON.stringify(given)} must be an array`);
  }
  const names = new Set<string>();
  const rules: AuthorizationRule[] = [];
  const deny: CompiledRule[] = [];
  const allow: CompiledRule[] = [];
  given.forEach((rule: unknown, i) => {
    const { copy, compiled } = compileRule(rule, `rules[${i}]`);
    if (names.has(copy.name)) {
      throw new RangeError(`rules[${i}].name ${JSON.stringify(copy.name)} is used twice`);
    }
    names.add(copy.name);
    rules.push(copy);
    (copy.action === "DENY" ? deny : allow).push(compiled);
  });

  const allowedByDefault: AuthorizationDecision = Object.freeze({
    allowed: true,
    reason: "no rule matched; default allow",
  });
  const deniedByDefault: AuthorizationDecision = Object.freeze({
    allowed: false,
    code: Code.PermissionDenied,
    reason: "no ALLOW rule matched; default deny",
  });
  const identityWanted = new Map<string, AuthorizationDecision>();
  for (const r of allow) {
    if (!r.identity) continue;
    identityWanted.set(
      r.name,
      Object.freeze({
        allowed: false,
        code: Code.Unauthenticated,
        reason: `no peer identity; rule ${JSON.stringify(r.name)} allows only identified peers`,
      }),
    );
  }

  const policy: AuthorizationPolicy = {
    rules: Object.freeze(rules),
    defaultAction,
    decide(request) {
      const peer = request.peer;
      const principal = principalOf(peer);
      const trustDomain = principal === undefined ? undefined : trustDomainOf(peer, principal);
      const path = `${request.service}/${request.method}`;
      const header = request.header;
      for (const r of deny) {
        if (
          r.methodMatches(path) &&
          r.peerMatches(principal, trustDomain) &&
          r.headersMatch(header)
        ) {
          return principal === undefined && r.identity ? unauthenticatedBy(r) : r.decision;
        }
      }
      for (const r of allow) {
        if (
          r.methodMatches(path) &&
          r.peerMatches(principal, trustDomain) &&
          r.headersMatch(header)
        ) {
          return r.decision;
        }
      }
      if (defaultAction === "allow") return allowedByDefault;
      if (principal === undefined) {
        for (const r of allow) {
          if (r.identity && r.methodMatches(path) && r.headersMatch(header)) {
            return identityWanted.get(r.name) ?? deniedByDefault;
          }
        }
      }
      return deniedByDefault;
    },
  };
  policies.add(policy);
  return Object.freeze(policy);
}

/** isAuthorizationPolicy tells a policy built by createAuthorizationPolicy from other values. */
export function isAuthorizationPolicy(value: unknown): value is AuthorizationPolicy {
  return typeof value === "object" && value !== null && policies.has(value);
}

const unauthenticatedDecisions = new WeakMap<CompiledRule, AuthorizationDecision>();

function unauthenticatedBy(r: CompiledRule): AuthorizationDecision {
  let d = unauthenticatedDecisions.get(r);
  if (d === undefined) {
    d = Object.freeze({
      allowed: false,
      code: Code.Unauthenticated,
      rule: r.name,
      reason: `no peer identity; denied by rule ${JSON.stringify(r.name)}`,
    });
    unauthenticatedDecisions.set(r, d);
  }
  return d;
}

function trustDomainOf(peer: PeerIdentity, principal: string): string | undefined {
  if (peer.trustDomain !== undefined) return peer.trustDomain.toLowerCase();
  // spiffe://<trust-domain>/<path>
  const rest = principal.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  return (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
}

function compileRule(
  rule: unknown,
  field: string,
): { copy: AuthorizationRule; compiled: CompiledRule } {
  if (typeof rule !== "object" || rule === null || Array.isArray(rule)) {
    throw new TypeError(`${field} ${JSON.stringify(rule)} must be an object`);
  }
  for (const key of Object.keys(rule)) {
    if (!RULE_FIELDS.has(key)) {
      throw new TypeError(`${field} has unknown field ${JSON.stringify(key)}`);
    }
  }
  const r = rule as AuthorizationRule;
  if (typeof r.name !== "string") {
    throw new TypeError(`${field}.name ${JSON.stringify(r.name)} must be a string`);
  }
  if (!RULE_NAME.test(r.name)) {
    throw new RangeError(
      `${field}.name ${JSON.stringify(r.name)} must be 1-128 letters, digits, ".", "_", ":", "-"`,
    );
  }
  if (r.action !== "ALLOW" && r.action !== "DENY") {
    throw new RangeError(`${field}.action ${JSON.stringify(r.action)} must be "ALLOW" or "DENY"`);
  }
  const principals = list(r.principals, `${field}.principals`, compilePrincipal);
  const notPrincipals = list(r.notPrincipals, `${field}.notPrincipals`, compilePrincipal);
  const trustDomains = list(r.trustDomains, `${field}.trustDomains`, compileTrustDomain);
  const notTrustDomains = list(r.notTrustDomains, `${field}.notTrustDomains`, compileTrustDomain);
  const methods = list(r.methods, `${field}.methods`, compileMethod);
  const notMethods = list(r.notMethods, `${field}.notMethods`, compileMethod);
  const headers = list(r.headers, `${field}.headers`, compileHeader);

  const copy: AuthorizationRule = Object.freeze({
    name: r.name,
    action: r.action,
    ...frozenList("principals", r.principals),
    ...frozenList("notPrincipals", r.notPrincipals),
    ...frozenList("trustDomains", r.trustDomains),
    ...frozenList("notTrustDomains", r.notTrustDomains),
    ...frozenList("methods", r.methods),
    ...frozenList("notMethods", r.notMethods),
    ...(r.headers === undefined
      ? {}
      : { headers: Object.freeze(r.headers.map((h) => Object.freeze({ ...h }))) }),
  });

  const principal = principals === undefined ? undefined : anyOf(principals);
  const notPrincipal = notPrincipals === undefined ? undefined : anyOf(notPrincipals);
  const domains = trustDomains === undefined ? undefined : new Set(trustDomains);
  const notDomains = notTrustDomains === undefined ? undefined : new Set(notTrustDomains);
  const method = methods === undefined ? undefined : anyOf(methods);
  const notMethod = notMethods === undefined ? undefined : anyOf(notMethods);
  const headerMatchers: readonly HeaderMatcher[] = headers ?? [];

  const decision: AuthorizationDecision =
    r.action === "ALLOW"
      ? Object.freeze({
          allowed: true,
          rule: r.name,
          reason: `allowed by rule ${JSON.stringify(r.name)}`,
        })
      : Object.freeze({
          allowed: false,
          code: Code.PermissionDenied,
          rule: r.name,
          reason: `denied by rule ${JSON.stringify(r.name)}`,
        });

  const compiled: CompiledRule = {
    name: r.name,
    identity: [principals, notPrincipals, trustDomains, notTrustDomains].some(
      (c) => c !== undefined,
    ),
    peerMatches(p, td) {
      if (principal !== undefined && (p === undefined || !principal(p))) return false;
      if (notPrincipal !== undefined && p !== undefined && notPrincipal(p)) return false;
      if (domains !== undefined && (td === undefined || !domains.has(td))) return false;
      if (notDomains !== undefined && td !== undefined && notDomains.has(td)) return false;
      return true;
    },
    methodMatches(path) {
      if (method !== undefined && !method(path)) return false;
      return notMethod === undefined || !notMethod(path);
    },
    headersMatch(header) {
      for (const h of headerMatchers) if (!h(header)) return false;
      return true;
    },
    decision,
  };
  return { copy, compiled };
}

function list<T>(
  value: unknown,
  field: string,
  compile: (entry: unknown, field: string) => T,
): T[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    throw new TypeError(`${field} ${JSON.stringify(value)} must be an array`);
  }
  if (value.length === 0) {
    // An empty list would read as "matches nothing" to some and "no condition" to others.
    throw new RangeError(`${field} [] must list at least one entry (or be left out)`);
  }
  return value.map((v, i) => compile(v, `${field}[${i}]`));
}

function frozenList<K extends string>(
  key: K,
  value: readonly string[] | undefined,
): { [P in K]?: readonly string[] } {
  return (value === undefined ? {} : { [key]: Object.freeze([...value]) }) as {
    [P in K]?: readonly string[];
  };
}
