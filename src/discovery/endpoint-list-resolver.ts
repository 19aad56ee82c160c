import { type Clock, systemClock } from "../clock.js";
import { parseAddress } from "./address.js";
import { createEndpoint, createEndpointSet, type Endpoint } from "./endpoint.js";
import type { Resolver } from "./resolver.js";

/** EndpointInit describes one endpoint of a fixed list: address, weight and metadata. */
export interface EndpointInit {
  /** address is `host:port` (IPv6 in brackets). */
  readonly address: string;
  /** weight 1..65535; default 1. */
  readonly weight?: number;
  /** metadata such as `zone` and `version`, as a registry would carry it. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/**
 * createEndpointListResolver resolves a fixed list of endpoints with their
 * weights and metadata: the static resolver for traffic policies (zones,
 * versions) without a registry. Pass it as a transport's `resolver`. Bad
 * input is a TypeError or RangeError naming it: an address that does not
 * parse, a repeated address, a weight outside 1..65535, a metadata value
 * that is not a string.
 */
export function createEndpointListResolver(
  list: readonly EndpointInit[],
  clock: Clock = systemClock,
): Resolver {
  const seen = new Set<string>();
  const endpoints: Endpoint[] = list.map((e) => {
    parseAddress(e.address);
    if (seen.has(e.address)) throw new TypeError(`address ${e.address} is listed twice`);
    seen.add(e.address);
    if (
      e.weight !== undefined &&
      !(Number.isInteger(e.weight) && e.weight >= 1 && e.weight <= 65535)
    ) {
      throw new RangeError(
        `endpoint ${e.address} weight ${e.weight} must be an integer in 1..65535`,
      );
    }
    for (const [k, v] of Object.entries(e.metadata ?? {})) {
      if (typeof v !== "string") {
        throw new TypeError(
          `endpoint ${e.address} metadata ${k} ${JSON.stringify(v)} must be a string`,
        );
      }
    }
    return createEndpoint(e.address, {
      ...(e.weight === undefined ? {} : { weight: e.weight }),
      metadata: { ...e.metadata },
    });
  });
  return {
    start(listener) {
      listener.onUpdate(createEndpointSet(endpoints, clock.now()));
    },
    close() {},
  };
}
