// The compiled policy against a plain reading of the rules (the model below,
// written from the documented semantics, not from the implementation), over
// random policies and calls.

import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ANONYMOUS_PEER,
  type AuthorizationPolicyOptions,
  type AuthorizationRule,
  createAuthorizationPolicy,
  type HeaderCondition,
  type PeerIdentity,
} from "../../src/index.js";

const IDS = [
  "spiffe://a/ns/default/sa/orders",
  "spiffe://a/ns/default/sa/web",
  "spiffe://a/ns/ops/sa/admin",
  "spiffe://b/ns/default/sa/orders",
];
const PRINCIPAL_PATTERNS = [
  ...IDS,
  "a/ns/default/sa/orders",
  "spiffe://a/ns/default/*",
  "spiffe://b/*",
  "*/sa/orders",
  "*",
];
const PATHS = [
  "shop.v1.Orders/Get",
  "shop.v1.Orders/Create",
  "shop.v2.Catalog/List",
  "legacy.Old/Get",
];
const METHOD_PATTERNS = [...PATHS, "shop.v1.Orders/*", "shop.*", "*/Get", "*"];
const DOMAINS = ["a", "b"];
const HEADER_CONDITIONS: HeaderCondition[] = [
  { name: "x-tenant", exact: "acme" },
  { name: "x-tenant", prefix: "ac" },
  { name: "x-tenant", present: true },
  { name: "x-tenant", present: false },
  { name: "x-debug", present: true },
];

const some = <T>(pool: readonly T[]) =>
  fc.option(fc.uniqueArray(fc.constantFrom(...pool), { minLength: 1, maxLength: 3 }), {
    nil: undefined,
  });

const ruleArb = fc.record(
  {
    action: fc.constantFrom("ALLOW" as const, "DENY" as const),
    principals: some(PRINCIPAL_PATTERNS),
    notPrincipals: some(PRINCIPAL_PATTERNS),
    trustDomains: some(DOMAINS),
    notTrustDomains: some(DOMAINS),
    methods: some(METHOD_PATTERNS),
    notMethods: some(METHOD_PATTERNS),
    headers: some(HEADER_CONDITIONS),
  },
  { requiredKeys: ["action"] },
);

const policyArb = fc.record({
  defaultAction: fc.constantFrom("allow" as const, "deny" as const),
  rules: fc.array(ruleArb, { maxLength: 6 }),
});

const callArb = fc.record({
  id: fc.option(fc.constantFrom(...IDS), { nil: undefined }),
  path: fc.constantFrom(...PATHS),
  tenant: fc.option(fc.constantFrom("acme", "acme-eu", "other"), { nil: undefined }),
  debug: fc.boolean(),
});

// --- the model --------------------------------------------------------------

function patternMatches(pattern: string, value: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return value === pattern;
}

function principalMatches(pattern: string, id: string): boolean {
  const full =
    pattern.startsWith("*") || pattern.startsWith("spiffe://") ? pattern : `spiffe://${pattern}`;
  return patternMatches(full, id);
}

interface Call {
  readonly id: string | undefined;
  readonly path: string;
  readonly headers: Headers;
}

function headerHolds(c: HeaderCondition, h: Headers): boolean {
  const v = h.get(c.name);
  if (c.present !== undefined) return (v !== null) === c.present;
  if (c.exact !== undefined) return v === c.exact;
  return v?.startsWith(c.prefix as string) === true;
}

function identityPart(r: AuthorizationRule, id: string | undefined): boolean {
  const td = id === undefined ? undefined : id.slice(9).split("/")[0];
  if (r.principals && !(id !== undefined && r.principals.some((p) => principalMatches(p, id))))
    return false;
  if (r.notPrincipals && id !== undefined && r.notPrincipals.some((p) => principalMatches(p, id)))
    return false;
  if (r.trustDomains && !(td !== undefined && r.trustDomains.includes(td))) return false;
  if (r.notTrustDomains && td !== undefined && r.notTrustDomains.includes(td)) return false;
  return true;
}

function restPart(r: AuthorizationRule, c: Call): boolean {
  if (r.methods && !r.methods.some((m) => patternMatches(m, c.path))) return false;
  if (r.notMethods?.some((m) => patternMatches(m, c.path))) return false;
  return (r.headers ?? []).every((h) => headerHolds(h, c.headers));
}

const usesIdentity = (r: AuthorizationRule) =>
  [r.principals, r.notPrincipals, r.trustDomains, r.notTrustDomains].some((x) => x !== undefined);

function model(p: Required<AuthorizationPolicyOptions>, c: Call) {
  const matches = (r: AuthorizationRule) => identityPart(r, c.id) && restPart(r, c);
  const deny = p.rules.find((r) => r.action === "DENY" && matches(r));
  if (deny !== undefined) {
    const unauth = c.id === undefined && usesIdentity(deny);
    return {
      allowed: false,
      code: unauth ? Code.Unauthenticated : Code.PermissionDenied,
      rule: deny.name,
    };
  }
  const allow = p.rules.find((r) => r.action === "ALLOW" && matches(r));
  if (allow !== undefined) return { allowed: true, code: undefined, rule: allow.name };
  if (p.defaultAction === "allow") return { allowed: true, code: undefined, rule: undefined };
  const wanted =
    c.id === undefined &&
    p.rules.some((r) => r.action === "ALLOW" && usesIdentity(r) && restPart(r, c));
  return {
    allowed: false,
    code: wanted ? Code.Unauthenticated : Code.PermissionDenied,
    rule: undefined,
  };
}

// -----------------------------------------------------------------------------

describe("authorization policy against its model", () => {
  it("decides every random call as the documented rules say", () => {
    fc.assert(
      fc.property(policyArb, fc.array(callArb, { minLength: 1, maxLength: 8 }), (raw, calls) => {
        const rules = raw.rules.map((r, i) => ({ ...r, name: `r${i}` }) as AuthorizationRule);
        const opts = { defaultAction: raw.defaultAction, rules };
        const policy = createAuthorizationPolicy(opts);
        for (const c of calls) {
          const headers = new Headers();
          if (c.tenant !== undefined) headers.set("x-tenant", c.tenant);
          if (c.debug) headers.set("x-debug", "1");
          const peer: PeerIdentity =
            c.id === undefined
              ? ANONYMOUS_PEER
              : { authenticated: true, spiffeId: c.id, uris: [c.id], dnsNames: [] };
          const [service, method] = c.path.split("/") as [string, string];
          const d = policy.decide({ peer, service, method, header: headers });
          const want = model(opts, { id: c.id, path: c.path, headers });
          expect({ allowed: d.allowed, code: d.code, rule: d.rule }).toEqual(want);
        }
      }),
      { numRuns: 500, seed: 16_2 },
    );
  });
});
