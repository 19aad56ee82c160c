/**
 * Endpoint is one addressable replica of a service. Endpoints are immutable:
 * a change to an endpoint is a new endpoint in a new snapshot.
 */
export interface Endpoint {
  /** address is `host:port`; IPv6 hosts are written in brackets (`[::1]:5000`). */
  readonly address: string;
  /** weight scales the endpoint's share of traffic, 1..65535 (default 1). */
  readonly weight: number;
  /** metadata carries registry attributes such as `id`, `zone`, `version`. */
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * EndpointSet is an immutable snapshot of a target's endpoints, pushed whole by
 * a resolver. Consumers swap snapshots; they never mutate one.
 */
export interface EndpointSet {
  readonly endpoints: readonly Endpoint[];
  /** resolvedAt is the clock time at which the resolver produced this snapshot. */
  readonly resolvedAt: number;
  /**
   * staleSince is set when the resolver lost its source and keeps serving the
   * last-known endpoints (stale-on-outage): the clock time the outage began.
   */
  readonly staleSince?: number;
}

/** DEFAULT_WEIGHT is the weight of an endpoint whose record names none. */
export const DEFAULT_WEIGHT = 1;

/** createEndpoint builds a frozen endpoint, filling defaults. */
export function createEndpoint(
  address: string,
  init: { weight?: number; metadata?: Record<string, string> } = {},
): Endpoint {
  return Object.freeze({
    address,
    weight: init.weight ?? DEFAULT_WEIGHT,
    metadata: Object.freeze({ ...(init.metadata ?? {}) }),
  });
}

/** createEndpointSet builds a frozen snapshot. */
export function createEndpointSet(
  endpoints: readonly Endpoint[],
  resolvedAt: number,
  staleSince?: number,
): EndpointSet {
  const set: EndpointSet =
    staleSince === undefined
      ? { endpoints: Object.freeze([...endpoints]), resolvedAt }
      : { endpoints: Object.freeze([...endpoints]), resolvedAt, staleSince };
  return Object.freeze(set);
}
