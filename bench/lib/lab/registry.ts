import {
  createEtcdRegistry,
  createMeshRegistry,
  type ServiceRegistry,
} from "../../../src/index.js";
import type { RegistrySpec } from "./protocol.js";

/** createRegistry builds the registry a RegistrySpec names (etcd or the embedded mesh registry). */
export function createRegistry(spec: RegistrySpec): ServiceRegistry {
  const ttl = spec.leaseTtlMs === undefined ? {} : { leaseTtlMs: spec.leaseTtlMs };
  return spec.kind === "etcd"
    ? createEtcdRegistry({ endpoints: [...spec.endpoints], ...ttl })
    : createMeshRegistry({ dir: spec.dir, ...ttl });
}
