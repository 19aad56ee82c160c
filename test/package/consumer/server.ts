// A consumer's server, compiled by its own tsc and run with plain node.
import { createMeshServer } from "connect-mesh";
import { GreetService } from "./gen/greet/v1/greet_pb.js";

const server = createMeshServer({
  routes: (router) =>
    router.service(GreetService, {
      greet: (req) => ({ greeting: `hello, ${req.name}` }),
    }),
});
const { address } = await server.listen({ port: 0 });
console.log(address);
process.once("SIGTERM", () => void server.close({ graceMs: 1_000 }));
