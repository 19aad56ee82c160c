import {
  createEndpoint,
  createEndpointSet,
  type Registration,
  type Resolver,
  type ResolverListener,
  type ServiceRegistry,
} from "../../src/index.js";

/** A registry living in one test process, recording every register/deregister. */
export function createMemoryRegistry(name = "memory"): ServiceRegistry & {
  readonly log: string[];
  live(service: string): Registration[];
} {
  const live = new Map<string, Registration>();
  const listeners = new Map<string, Set<ResolverListener>>();
  const log: string[] = [];
  const publish = (service: string) => {
    const endpoints = [...live.values()]
      .filter((r) => r.service === service)
      .map((r) => createEndpoint(r.address, { metadata: { ...r.metadata } }));
    for (const l of listeners.get(service) ?? []) {
      l.onUpdate(createEndpointSet(endpoints, performance.now()));
    }
  };
  return {
    name,
    log,
    live: (service) => [...live.values()].filter((r) => r.service === service),
    async register(r) {
      const key = `${r.service}/${r.instanceId}`;
      live.set(key, r);
      log.push(`register ${key} ${r.address}`);
      publish(r.service);
      let done = false;
      return {
        async deregister() {
          if (done) return;
          done = true;
          live.delete(key);
          log.push(`deregister ${key}`);
          publish(r.service);
        },
      };
    },
    resolver(service): Resolver {
      let mine: ResolverListener | undefined;
      return {
        start(l) {
          mine = l;
          let set = listeners.get(service);
          if (set === undefined) {
            set = new Set();
            listeners.set(service, set);
          }
          set.add(l);
          publish(service);
        },
        close() {
          if (mine !== undefined) listeners.get(service)?.delete(mine);
        },
      };
    },
    async close() {},
  };
}
