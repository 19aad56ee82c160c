// A mesh server in its own process, registered in etcd: the fault tests
// start three of these, then pause or kill etcd under them.
// Usage: tsx etcd-registered-server.ts <etcd endpoint> <prefix> <instance id>
import { createEtcdRegistry } from "../../src/discovery/etcd-registry.js";
import { createMeshServer } from "../../src/server/create-mesh-server.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

const [endpoint, prefix, instanceId] = process.argv.slice(2);
if (endpoint === undefined || prefix === undefined || instanceId === undefined) {
  throw new Error("usage: etcd-registered-server.ts <etcd endpoint> <prefix> <instance id>");
}
const registry = createEtcdRegistry({
  endpoints: [endpoint],
  prefix,
  // The shortest TTL etcd takes: a 10 s pause outlives it several times over.
  leaseTtlMs: 2_000,
  onEvent: (e) => process.stdout.write(`registry ${e.type}\n`),
});
const server = createMeshServer({
  routes: (router) => router.service(EchoService, createEchoImpl(instanceId)),
  logger: false,
  registration: { registry, service: "echo", instanceId },
});
const bound = await server.listen();
process.stdout.write(`ready ${bound.address}\n`);
process.once("SIGTERM", () => {
  server
    .close({ graceMs: 1_000 })
    .then(() => registry.close())
    .finally(() => process.exit(0));
});
