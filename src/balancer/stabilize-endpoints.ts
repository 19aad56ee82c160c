import type { Endpoint } from "../discovery/endpoint.js";

/**
 * HeldEndpoint is an endpoint the resolver dropped that the balancer still
 * uses, since `removedAt`, while it answers.
 */
export interface HeldEndpoint {
  readonly endpoint: Endpoint;
  readonly removedAt: number;
}

/** StabilizeInput is everything stabilizeEndpoints decides from. */
export interface StabilizeInput {
  /** resolved is the resolver's latest snapshot. */
  readonly resolved: readonly Endpoint[];
  /** current is the set the balancer used until now (resolved + held). */
  readonly current: readonly Endpoint[];
  /** held are the removals being held, by address. */
  readonly held: ReadonlyMap<string, HeldEndpoint>;
  /**
   * dead are addresses known not to answer: connection refused or closed,
   * or ejected by outlier detection. A dead removal is applied at once.
   */
  readonly dead: ReadonlySet<string>;
  readonly now: number;
  /** removalGraceMs is how long a removal is held; 0 applies every removal at once. */
  readonly removalGraceMs: number;
}

/** RemovalReason says why a held removal was applied. */
export type RemovalReason = "expired" | "dead";

/** StabilizeDecision is the set to use and what changed about the holds. */
export interface StabilizeDecision {
  /** endpoints is the set the balancer uses: resolved, then held by address. */
  readonly endpoints: readonly Endpoint[];
  readonly held: ReadonlyMap<string, HeldEndpoint>;
  /** newlyHeld are removals that started being held now. */
  readonly newlyHeld: readonly string[];
  /** applied are removals that take effect now, with why. */
  readonly applied: readonly { readonly address: string; readonly reason: RemovalReason }[];
  /** returned are held endpoints the resolver lists again (the hold ends, nothing changes). */
  readonly returned: readonly string[];
  /** nextExpiryAt is when the earliest hold runs out; undefined when none is held. */
  readonly nextExpiryAt: number | undefined;
}

/**
 * stabilizeEndpoints is Finagle's stabilized address set, as a pure decision:
 * additions take effect at once, removals are held for `removalGraceMs`
 * while the endpoint still answers. After an etcd pause every lease that
 * expired meanwhile is revoked at once and the registrars put their records
 * back within milliseconds: without a hold the set goes 3 → 0 → 3 and the
 * calls in between fail; with it the set never shrinks. A removal whose
 * endpoint is dead (connection refused or closed, ejected) is applied at
 * once, since holding it would only send calls to a server that is gone.
 */
export function stabilizeEndpoints(input: StabilizeInput): StabilizeDecision {
  const { resolved, now, removalGraceMs, dead } = input;
  const listed = new Set(resolved.map((e) => e.address));
  const held = new Map<string, HeldEndpoint>();
  const newlyHeld: string[] = [];
  const applied: { address: string; reason: RemovalReason }[] = [];
  const returned: string[] = [];

  const consider = (h: HeldEndpoint, isNew: boolean) => {
    const address = h.endpoint.address;
    if (dead.has(address)) {
      applied.push({ address, reason: "dead" });
    } else if (now - h.removedAt >= removalGraceMs) {
      applied.push({ address, reason: "expired" });
    } else {
      held.set(address, h);
      if (isNew) newlyHeld.push(address);
    }
  };

  for (const [address, h] of input.held) {
    if (listed.has(address)) returned.push(address);
    else consider(h, false);
  }
  for (const e of input.current) {
    if (!listed.has(e.address) && !input.held.has(e.address)) {
      consider({ endpoint: e, removedAt: now }, true);
    }
  }

  const kept = [...held.values()]
    .map((h) => h.endpoint)
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  let nextExpiryAt: number | undefined;
  for (const h of held.values()) {
    const at = h.removedAt + removalGraceMs;
    if (nextExpiryAt === undefined || at < nextExpiryAt) nextExpiryAt = at;
  }
  return {
    endpoints: kept.length === 0 ? resolved : [...resolved, ...kept],
    held,
    newlyHeld,
    applied,
    returned,
    nextExpiryAt,
  };
}
