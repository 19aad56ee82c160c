import type { Clock } from "../clock.js";
import { createDnsResolver } from "./dns-resolver.js";
import { createEtcdRegistry } from "./etcd-registry.js";
import { createMeshRegistry, type MeshRegistry } from "./mesh-registry.js";
import type { ServiceRegistry } from "./registry.js";
import type { Resolver } from "./resolver.js";
import { createStaticResolver } from "./static-resolver.js";
import type { Target } from "./target.js";

/** ResolverFactory builds the resolver of one target scheme. */
export type ResolverFactory = (target: Target, clock: Clock) => Resolver;

/** ResolverChoice is what a transport may be given to resolve its target. */
export interface ResolverChoice {
  /** resolver, when given, resolves the target whatever its scheme (your own discovery). */
  readonly resolver?: Resolver;
  /** registries serve the schemes they are named after (`mesh`, `etcd`, or yours). */
  readonly registries?: readonly ServiceRegistry[];
  /** schemes adds resolver factories by scheme name. */
  readonly schemes?: Readonly<Record<string, ResolverFactory>>;
}

let defaultMeshRegistry: MeshRegistry | undefined;

/**
 * sharedMeshRegistry is the process-wide embedded registry behind `mesh:///`
 * targets and servers that name no registry: its directory comes from
 * `MESH_REGISTRY_DIR` or the temp dir, so every process on the host shares it.
 */
export function sharedMeshRegistry(): MeshRegistry {
  defaultMeshRegistry ??= createMeshRegistry();
  return defaultMeshRegistry;
}

let defaultEtcdRegistry: ServiceRegistry | undefined;

/**
 * sharedEtcdRegistry is the process-wide etcd registry behind `etcd:///`
 * targets that name no registry, on the endpoints in `MESH_ETCD_ENDPOINTS`
 * (default 127.0.0.1:2379).
 */
export function sharedEtcdRegistry(): ServiceRegistry {
  defaultEtcdRegistry ??= createEtcdRegistry();
  return defaultEtcdRegistry;
}

/** BUILTIN_SCHEMES resolves the schemes that need no explicit registry. */
const BUILTIN_SCHEMES: Record<string, ResolverFactory> = {
  static: (t, clock) => createStaticResolver(t.endpoint, clock),
  mesh: (t) => sharedMeshRegistry().resolver(t.endpoint),
  etcd: (t) => sharedEtcdRegistry().resolver(t.endpoint),
  dns: (t, clock) => createDnsResolver({ target: t.raw, clock }),
  "dns+srv": (t, clock) => createDnsResolver({ target: t.raw, clock }),
};

/**
 * createResolver picks the resolver for a parsed target: an explicit resolver
 * first, then a registry named after the scheme, then the scheme factories.
 * An unknown scheme is a TypeError naming it and the schemes on offer.
 */
export function createResolver(target: Target, choice: ResolverChoice, clock: Clock): Resolver {
  if (choice.resolver !== undefined) {
    return choice.resolver;
  }
  const registry = choice.registries?.find((r) => r.name === target.scheme);
  if (registry !== undefined) {
    return registry.resolver(target.endpoint);
  }
  const factories = { ...BUILTIN_SCHEMES, ...choice.schemes };
  const factory = factories[target.scheme];
  if (factory === undefined) {
    const known = [...Object.keys(factories), ...(choice.registries ?? []).map((r) => r.name)];
    throw new TypeError(
      `target ${JSON.stringify(target.raw)}: unknown scheme ${JSON.stringify(target.scheme)} (known: ${known.join(", ")})`,
    );
  }
  return factory(target, clock);
}
