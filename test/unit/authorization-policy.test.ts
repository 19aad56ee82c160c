import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  ANONYMOUS_PEER,
  type AuthorizationPolicyOptions,
  type AuthorizationRule,
  createAuthorizationHolder,
  createAuthorizationPolicy,
  isAuthorizationPolicy,
  type PeerIdentity,
} from "../../src/index.js";

function peer(spiffeId: string, withTrustDomain = true): PeerIdentity {
  const trustDomain = /^spiffe:\/\/([^/]+)/.exec(spiffeId)?.[1];
  return {
    authenticated: true,
    spiffeId,
    ...(withTrustDomain ? { trustDomain } : {}),
    uris: [spiffeId],
    dnsNames: [],
  };
}

const ORDERS = peer("spiffe://a/ns/default/sa/orders");
const WEB = peer("spiffe://a/ns/default/sa/web");
const BILLING = peer("spiffe://a/ns/billing/sa/billing");
const OPS = peer("spiffe://a/ns/ops/sa/admin");
const FOREIGN_ORDERS = peer("spiffe://b/ns/default/sa/orders");
const FOREIGN_BILLING = peer("spiffe://b/ns/billing/sa/billing");
const ANON = ANONYMOUS_PEER;

const RULES: readonly AuthorizationRule[] = [
  { name: "deny-legacy", action: "DENY", methods: ["legacy.*"] },
  {
    name: "deny-foreign-writes",
    action: "DENY",
    notTrustDomains: ["a"],
    methods: ["shop.v1.Orders/Create*"],
  },
  {
    name: "deny-debug-header",
    action: "DENY",
    headers: [{ name: "X-Debug", present: true }],
    notPrincipals: ["spiffe://a/ns/ops/*"],
  },
  { name: "legacy-orders", action: "ALLOW", principals: ["*/sa/orders"], methods: ["legacy.*"] },
  {
    name: "orders-read",
    action: "ALLOW",
    principals: ["spiffe://a/ns/default/*"],
    methods: ["shop.v1.Orders/Get", "/shop.v1.Orders/List"],
  },
  // Istio's scheme-less principal form.
  {
    name: "orders-write",
    action: "ALLOW",
    principals: ["a/ns/default/sa/orders"],
    methods: ["shop.v1.Orders/*"],
  },
  {
    name: "billing",
    action: "ALLOW",
    trustDomains: ["a"],
    principals: ["*/sa/billing"],
    methods: ["shop.v1.Billing/*"],
  },
  { name: "health", action: "ALLOW", methods: ["grpc.health.v1.Health/*"] },
  {
    name: "canary",
    action: "ALLOW",
    headers: [{ name: "x-canary", exact: "1" }],
    methods: ["shop.v1.Canary/*"],
  },
  {
    name: "tenants",
    action: "ALLOW",
    principals: ["*"],
    headers: [{ name: "x-tenant", prefix: "acme-" }],
    methods: ["shop.v1.Tenants/*"],
  },
  {
    name: "probe-without-agent",
    action: "ALLOW",
    headers: [{ name: "user-agent", present: false }],
    methods: ["*/Ping"],
  },
  {
    name: "catalog-but-admin",
    action: "ALLOW",
    trustDomains: ["a"],
    methods: ["shop.v1.Catalog/*"],
    notMethods: ["shop.v1.Catalog/Admin*"],
  },
  {
    name: "catalog-admin-first",
    action: "ALLOW",
    principals: [OPS.spiffeId as string],
    methods: ["shop.v1.Catalog/*"],
  },
  {
    name: "catalog-admin-second",
    action: "ALLOW",
    principals: [OPS.spiffeId as string],
    methods: ["shop.v1.Catalog/*"],
  },
];

const policy = createAuthorizationPolicy({ rules: RULES });

type Expected =
  | { allowed: true; rule?: string }
  | { allowed: false; code: Code; rule?: string; reason?: RegExp };

interface Case {
  readonly name: string;
  readonly peer: PeerIdentity;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly expected: Expected;
}

const cases: Case[] = [
  {
    name: "an ALLOW rule's principal prefix lets a peer in",
    peer: ORDERS,
    path: "shop.v1.Orders/Get",
    expected: { allowed: true, rule: "orders-read" },
  },
  {
    name: "a method pattern written as an HTTP path matches",
    peer: WEB,
    path: "shop.v1.Orders/List",
    expected: { allowed: true, rule: "orders-read" },
  },
  {
    name: "a principal outside every ALLOW rule falls to the default deny",
    peer: BILLING,
    path: "shop.v1.Orders/Get",
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "no identity where an ALLOW rule wants one: UNAUTHENTICATED naming that rule",
    peer: ANON,
    path: "shop.v1.Orders/Get",
    expected: { allowed: false, code: Code.Unauthenticated, reason: /"orders-read"/ },
  },
  {
    name: "the Istio scheme-less principal form matches the SPIFFE ID exactly",
    peer: ORDERS,
    path: "shop.v1.Orders/Cancel",
    expected: { allowed: true, rule: "orders-write" },
  },
  {
    name: "an exact principal does not match a sibling",
    peer: WEB,
    path: "shop.v1.Orders/Cancel",
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "a DENY rule on another trust domain denies, naming the rule",
    peer: FOREIGN_ORDERS,
    path: "shop.v1.Orders/CreateOrder",
    expected: { allowed: false, code: Code.PermissionDenied, rule: "deny-foreign-writes" },
  },
  {
    name: "a DENY rule matched through notTrustDomains by a peer without identity: UNAUTHENTICATED",
    peer: ANON,
    path: "shop.v1.Orders/CreateOrder",
    expected: { allowed: false, code: Code.Unauthenticated, rule: "deny-foreign-writes" },
  },
  {
    name: "DENY comes first: an ALLOW rule matching too does not help",
    peer: ORDERS,
    path: "legacy.v1.Old/Do",
    expected: { allowed: false, code: Code.PermissionDenied, rule: "deny-legacy" },
  },
  {
    name: "a DENY rule that ignores identity denies anonymous peers with PERMISSION_DENIED",
    peer: ANON,
    path: "legacy.v2.Older/Do",
    expected: { allowed: false, code: Code.PermissionDenied, rule: "deny-legacy" },
  },
  {
    name: "a package wildcard does not match a longer package name's sibling",
    peer: ORDERS,
    path: "legacyx.v1.Old/Do",
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "a rule without identity conditions allows anonymous peers (health)",
    peer: ANON,
    path: "grpc.health.v1.Health/Check",
    expected: { allowed: true, rule: "health" },
  },
  {
    name: "a present header triggers a DENY rule, whatever the method",
    peer: ORDERS,
    path: "shop.v1.Orders/Get",
    headers: { "x-debug": "1" },
    expected: { allowed: false, code: Code.PermissionDenied, rule: "deny-debug-header" },
  },
  {
    name: "notPrincipals exempts the listed principals from that DENY rule",
    peer: OPS,
    path: "grpc.health.v1.Health/Check",
    headers: { "x-debug": "1" },
    expected: { allowed: true, rule: "health" },
  },
  {
    name: "principal suffix and trust domain both hold",
    peer: BILLING,
    path: "shop.v1.Billing/Charge",
    expected: { allowed: true, rule: "billing" },
  },
  {
    name: "the right principal suffix in the wrong trust domain is not enough",
    peer: FOREIGN_BILLING,
    path: "shop.v1.Billing/Charge",
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "the trust domain is read from the SPIFFE ID when the peer does not carry it",
    peer: peer("spiffe://a/ns/billing/sa/billing", false),
    path: "shop.v1.Billing/Refund",
    expected: { allowed: true, rule: "billing" },
  },
  {
    name: "an exact header value allows an anonymous peer",
    peer: ANON,
    path: "shop.v1.Canary/Try",
    headers: { "x-canary": "1" },
    expected: { allowed: true, rule: "canary" },
  },
  {
    name: "another header value does not match exact (and identity would not help)",
    peer: ANON,
    path: "shop.v1.Canary/Try",
    headers: { "x-canary": "2" },
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "a repeated header arrives joined, so exact fails",
    peer: ANON,
    path: "shop.v1.Canary/Try",
    headers: { "x-canary": "1, 1" },
    expected: { allowed: false, code: Code.PermissionDenied },
  },
  {
    name: "a header prefix with any authenticated principal",
    peer: FOREIGN_ORDERS,
    path: "shop.v1.Tenants/Get",
    headers: { "x-tenant": "acme-eu" },
    expected: { allowed: true, rule: "tenants" },
  },
  {
    name: "a header that misses the prefix",
    peer: ORDERS,
    path: "shop.v1.Tenants/Get",
    headers: { "x-tenant": "globex-eu" },
    expected: { allowed: false, code: Code.PermissionDenied },
  },
  {
    name: "principals '*' wants an identity: UNAUTHENTICATED for an anonymous peer",
    peer: ANON,
    path: "shop.v1.Tenants/Get",
    headers: { "x-tenant": "acme-eu" },
    expected: { allowed: false, code: Code.Unauthenticated, reason: /"tenants"/ },
  },
  {
    name: "a header that must be absent, with a method-name suffix pattern",
    peer: ANON,
    path: "shop.v1.Probe/Ping",
    expected: { allowed: true, rule: "probe-without-agent" },
  },
  {
    name: "the same call with the header present",
    peer: ANON,
    path: "shop.v1.Probe/Ping",
    headers: { "user-agent": "grpc-node-js/1.14" },
    expected: { allowed: false, code: Code.PermissionDenied },
  },
  {
    name: "notMethods carves methods out of a service wildcard",
    peer: ORDERS,
    path: "shop.v1.Catalog/List",
    expected: { allowed: true, rule: "catalog-but-admin" },
  },
  {
    name: "the carved-out method falls through to the default",
    peer: ORDERS,
    path: "shop.v1.Catalog/AdminDelete",
    expected: { allowed: false, code: Code.PermissionDenied, reason: /default deny/ },
  },
  {
    name: "the first matching ALLOW rule names the decision",
    peer: OPS,
    path: "shop.v1.Catalog/AdminDelete",
    expected: { allowed: true, rule: "catalog-admin-first" },
  },
  {
    name: "a peer whose certificate was not verified is anonymous, whatever its SPIFFE ID",
    peer: { ...ORDERS, authenticated: false },
    path: "shop.v1.Orders/Get",
    expected: { allowed: false, code: Code.Unauthenticated },
  },
];

describe("authorization policy decisions", () => {
  it.each(cases)("$name", (c) => {
    const [service, method] = c.path.split("/") as [string, string];
    const d = policy.decide({
      peer: c.peer,
      service,
      method,
      header: new Headers(c.headers ?? {}),
    });
    expect(d.allowed).toBe(c.expected.allowed);
    if (c.expected.allowed) {
      expect(d.code).toBeUndefined();
    } else {
      expect(d.code).toBe(c.expected.code);
      if (c.expected.reason !== undefined) expect(d.reason).toMatch(c.expected.reason);
    }
    if ("rule" in c.expected) {
      expect(d.rule).toBe(c.expected.rule);
      expect(d.reason).toContain(`"${c.expected.rule}"`);
    }
  });

  it("has at least 20 cases over the rule semantics", () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  const decide = (opts: AuthorizationPolicyOptions, p: PeerIdentity, path: string) => {
    const [service, method] = path.split("/") as [string, string];
    return createAuthorizationPolicy(opts).decide({
      peer: p,
      service,
      method,
      header: new Headers(),
    });
  };

  it("denies by default, with no rule named", () => {
    expect(decide({}, ORDERS, "a.B/C")).toEqual({
      allowed: false,
      code: Code.PermissionDenied,
      reason: "no ALLOW rule matched; default deny",
    });
  });

  it("allows by default when asked, anonymous peers too, while DENY rules still apply", () => {
    const opts: AuthorizationPolicyOptions = {
      defaultAction: "allow",
      rules: [{ name: "no-admin", action: "DENY", methods: ["a.B/Admin*"] }],
    };
    expect(decide(opts, ANON, "a.B/C")).toEqual({
      allowed: true,
      reason: "no rule matched; default allow",
    });
    expect(decide(opts, ORDERS, "a.B/AdminX")).toMatchObject({
      allowed: false,
      code: Code.PermissionDenied,
      rule: "no-admin",
    });
  });

  it("a rule without conditions matches every call", () => {
    const opts: AuthorizationPolicyOptions = { rules: [{ name: "all", action: "ALLOW" }] };
    expect(decide(opts, ANON, "x.Y/Z")).toMatchObject({ allowed: true, rule: "all" });
  });

  it("the Istio idiom notPrincipals: ['*'] denies peers without identity as UNAUTHENTICATED", () => {
    const opts: AuthorizationPolicyOptions = {
      defaultAction: "allow",
      rules: [{ name: "require-identity", action: "DENY", notPrincipals: ["*"] }],
    };
    expect(decide(opts, ANON, "x.Y/Z")).toMatchObject({
      allowed: false,
      code: Code.Unauthenticated,
      rule: "require-identity",
    });
    expect(decide(opts, WEB, "x.Y/Z")).toMatchObject({ allowed: true });
  });

  it("is immutable: changing the input after compiling changes nothing", () => {
    const rules: AuthorizationRule[] = [
      { name: "r", action: "ALLOW", methods: ["a.B/C"], principals: ["spiffe://a/*"] },
    ];
    const p = createAuthorizationPolicy({ rules });
    (rules[0]!.methods as string[]).push("*");
    rules.push({ name: "all", action: "ALLOW" });
    expect(p.rules).toHaveLength(1);
    expect(p.rules[0]?.methods).toEqual(["a.B/C"]);
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.rules)).toBe(true);
    expect(Object.isFrozen(p.rules[0])).toBe(true);
    expect(() => (p.rules[0]!.methods as string[]).push("*")).toThrow(TypeError);
    expect(
      p.decide({ peer: ORDERS, service: "x.Y", method: "Z", header: new Headers() }).allowed,
    ).toBe(false);
    expect(isAuthorizationPolicy(p)).toBe(true);
    expect(isAuthorizationPolicy({ ...p })).toBe(false);
  });
});

describe("authorization policy validation", () => {
  const bad: [string, unknown, typeof TypeError | typeof RangeError, RegExp][] = [
    ["a policy that is not an object", "allow", TypeError, /must be an object/],
    ["an unknown policy field", { rule: [] }, TypeError, /unknown field "rule"/],
    ["a bad default", { defaultAction: "DENY" }, RangeError, /defaultAction "DENY"/],
    ["rules that are not an array", { rules: {} }, TypeError, /rules \{\} must be an array/],
    ["a rule that is not an object", { rules: [null] }, TypeError, /rules\[0\] null/],
    [
      "an unknown rule field (a typo must not widen a rule)",
      { rules: [{ name: "r", action: "ALLOW", principal: ["x"] }] },
      TypeError,
      /rules\[0\] has unknown field "principal"/,
    ],
    ["a rule without a name", { rules: [{ action: "ALLOW" }] }, TypeError, /rules\[0\]\.name/],
    [
      "a name with spaces",
      { rules: [{ name: "a b", action: "ALLOW" }] },
      RangeError,
      /rules\[0\]\.name "a b"/,
    ],
    [
      "a name used twice",
      {
        rules: [
          { name: "r", action: "ALLOW" },
          { name: "r", action: "DENY" },
        ],
      },
      RangeError,
      /rules\[1\]\.name "r" is used twice/,
    ],
    [
      "a lower-case action",
      { rules: [{ name: "r", action: "allow" }] },
      RangeError,
      /rules\[0\]\.action "allow"/,
    ],
    [
      "an empty list",
      { rules: [{ name: "r", action: "ALLOW", methods: [] }] },
      RangeError,
      /rules\[0\]\.methods \[\] must list at least one/,
    ],
    [
      "a list that is a string",
      { rules: [{ name: "r", action: "ALLOW", principals: "spiffe://a/x" }] },
      TypeError,
      /rules\[0\]\.principals "spiffe:\/\/a\/x" must be an array/,
    ],
    [
      "a service without a method",
      { rules: [{ name: "r", action: "ALLOW", methods: ["pkg.Svc"] }] },
      RangeError,
      /rules\[0\]\.methods\[0\] "pkg.Svc"/,
    ],
    [
      "a wildcard in the middle",
      { rules: [{ name: "r", action: "ALLOW", methods: ["pkg.*/Get"] }] },
      RangeError,
      /methods\[0\] "pkg\.\*\/Get" may have one "\*"/,
    ],
    [
      "wildcards at both ends",
      { rules: [{ name: "r", action: "ALLOW", principals: ["*a*"] }] },
      RangeError,
      /principals\[0\] "\*a\*"/,
    ],
    [
      "a principal with another scheme",
      { rules: [{ name: "r", action: "ALLOW", principals: ["https://a/x"] }] },
      RangeError,
      /principals\[0\] "https:\/\/a\/x" must be a spiffe:\/\/ ID/,
    ],
    [
      "an empty principal",
      { rules: [{ name: "r", action: "ALLOW", principals: [""] }] },
      RangeError,
      /principals\[0\] "" must not be empty/,
    ],
    [
      "a trust domain in upper case",
      { rules: [{ name: "r", action: "ALLOW", trustDomains: ["Prod"] }] },
      RangeError,
      /trustDomains\[0\] "Prod"/,
    ],
    [
      "a number where a pattern goes",
      { rules: [{ name: "r", action: "DENY", notMethods: [7] }] },
      TypeError,
      /notMethods\[0\] 7 must be a string/,
    ],
    [
      "a header condition without a matcher",
      { rules: [{ name: "r", action: "ALLOW", headers: [{ name: "x-a" }] }] },
      TypeError,
      /headers\[0\] \(header "x-a"\) needs exactly one of exact, prefix, present/,
    ],
    [
      "a header condition with two matchers",
      {
        rules: [
          { name: "r", action: "ALLOW", headers: [{ name: "x-a", exact: "1", prefix: "1" }] },
        ],
      },
      TypeError,
      /needs exactly one/,
    ],
    [
      "a header name with a space",
      { rules: [{ name: "r", action: "ALLOW", headers: [{ name: "x a", present: true }] }] },
      RangeError,
      /headers\[0\]\.name "x a"/,
    ],
    [
      "present that is not a boolean",
      { rules: [{ name: "r", action: "ALLOW", headers: [{ name: "x-a", present: "yes" }] }] },
      TypeError,
      /headers\[0\]\.present "yes" must be a boolean/,
    ],
    [
      "an unknown header condition field",
      { rules: [{ name: "r", action: "ALLOW", headers: [{ name: "x-a", regex: ".*" }] }] },
      TypeError,
      /headers\[0\] has unknown field "regex"/,
    ],
  ];
  it.each(bad)("rejects %s", (_name, opts, type, message) => {
    expect(() => createAuthorizationPolicy(opts as AuthorizationPolicyOptions)).toThrow(type);
    expect(() => createAuthorizationPolicy(opts as AuthorizationPolicyOptions)).toThrow(message);
  });
});

describe("authorization holder", () => {
  const call = { peer: ORDERS, service: "a.B", method: "C", header: new Headers() };

  it("swaps the policy whole, and keeps the old one when the new one is bad", () => {
    const holder = createAuthorizationHolder({ defaultAction: "allow" });
    expect(holder.version).toBe(1);
    expect(holder.current().decide(call).allowed).toBe(true);
    const first = holder.current();
    holder.set({ rules: [{ name: "only-x", action: "ALLOW", methods: ["x.Y/*"] }] });
    expect(holder.version).toBe(2);
    expect(holder.current().decide(call)).toMatchObject({ allowed: false });
    // A decision taken from the old snapshot is unchanged by the swap.
    expect(first.decide(call).allowed).toBe(true);
    expect(() =>
      holder.set({ rules: [{ name: "bad", action: "ALLOW", methods: ["*x*"] }] }),
    ).toThrow(RangeError);
    expect(holder.version).toBe(2);
    expect(holder.current().rules.map((r) => r.name)).toEqual(["only-x"]);
    const compiled = createAuthorizationPolicy({ defaultAction: "allow" });
    expect(holder.set(compiled)).toBe(compiled);
    expect(holder.current()).toBe(compiled);
  });

  it("validates the initial policy", () => {
    expect(() => createAuthorizationHolder({ defaultAction: "maybe" as "allow" })).toThrow(
      RangeError,
    );
  });
});
