// Cost of one authorization decision (pure, in process): a 12-rule policy
// and the same call shapes the e2e tests use. `npx tsx bench/authz-decide.ts`
// prints ns per decision for an allowed call (matched by the last ALLOW
// rule), a call denied by the first DENY rule, and a default denial of a
// peer without identity (which scans the ALLOW rules twice).
import {
  ANONYMOUS_PEER,
  type AuthorizationRequest,
  type AuthorizationRule,
  createAuthorizationPolicy,
  type PeerIdentity,
} from "../src/index.js";

const peer = (spiffeId: string): PeerIdentity => ({
  authenticated: true,
  spiffeId,
  trustDomain: "a",
  uris: [spiffeId],
  dnsNames: [],
});

const rules: AuthorizationRule[] = [
  { name: "deny-legacy", action: "DENY", methods: ["legacy.*"] },
  { name: "deny-debug", action: "DENY", headers: [{ name: "x-debug", present: true }] },
  { name: "deny-foreign", action: "DENY", notTrustDomains: ["a"], methods: ["shop.v1.Orders/*"] },
];
for (let i = 0; i < 8; i++) {
  rules.push({
    name: `svc-${i}`,
    action: "ALLOW",
    principals: [`spiffe://a/ns/team-${i}/*`],
    methods: [`shop.v1.Service${i}/*`],
  });
}
rules.push({
  name: "orders",
  action: "ALLOW",
  principals: ["spiffe://a/ns/default/sa/checkout"],
  methods: ["shop.v1.Orders/Create", "shop.v1.Orders/Get"],
  headers: [{ name: "x-tenant", prefix: "acme-" }],
});
const policy = createAuthorizationPolicy({ rules });

const cases: [string, AuthorizationRequest][] = [
  [
    "allowed by the last rule",
    {
      peer: peer("spiffe://a/ns/default/sa/checkout"),
      service: "shop.v1.Orders",
      method: "Create",
      header: new Headers({ "x-tenant": "acme-eu" }),
    },
  ],
  [
    "denied by the first DENY rule",
    {
      peer: peer("spiffe://a/ns/default/sa/checkout"),
      service: "legacy.v1.Old",
      method: "Do",
      header: new Headers(),
    },
  ],
  [
    "anonymous, default deny (UNAUTHENTICATED)",
    { peer: ANONYMOUS_PEER, service: "shop.v1.Orders", method: "Get", header: new Headers() },
  ],
];

const N = 200_000;
for (const [name, req] of cases) {
  for (let i = 0; i < 20_000; i++) policy.decide(req);
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) policy.decide(req);
    runs.push(Number(process.hrtime.bigint() - t0) / N);
  }
  runs.sort((a, b) => a - b);
  const d = policy.decide(req);
  console.log(
    `${name}: median ${runs[2]?.toFixed(0)} ns/decision (min ${runs[0]?.toFixed(0)}) -> ${d.allowed ? "allow" : `deny ${d.code}`} ${d.rule ?? "(default)"}`,
  );
}
