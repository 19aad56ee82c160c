import { type Clock, systemClock } from "../clock.js";
import { parseAddress } from "./address.js";
import { createEndpoint, createEndpointSet, type Endpoint } from "./endpoint.js";
import type { Resolver } from "./resolver.js";

/**
 * createStaticResolver resolves a fixed, comma-separated list of `host:port`
 * addresses (IPv6 in brackets), as in `static:///10.0.0.1:5000,10.0.0.2:5000`.
 * The list is validated here: a bad address is a TypeError naming it.
 */
export function createStaticResolver(addresses: string, clock: Clock = systemClock): Resolver {
  const endpoints: Endpoint[] = [];
  const seen = new Set<string>();
  for (const part of addresses.split(",")) {
    const address = part.trim();
    parseAddress(address);
    if (!seen.has(address)) {
      seen.add(address);
      endpoints.push(createEndpoint(address));
    }
  }
  return {
    start(listener) {
      listener.onUpdate(createEndpointSet(endpoints, clock.now()));
    },
    close() {},
  };
}
