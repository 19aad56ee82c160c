// A consumer's ESM client: one call, exit 0 only on the expected answer.
import { createClient } from "@connectrpc/connect";
import { createMeshTransport } from "connect-mesh";
import { GreetService } from "./gen/greet/v1/greet_pb.js";

const transport = createMeshTransport({ target: process.argv[2] ?? "", defaultTimeoutMs: 5_000 });
const greeter = createClient(GreetService, transport);
const { greeting } = await greeter.greet({ name: "esm" });
await transport.close();
if (greeting !== "hello, esm") throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`);
console.log(`esm client: ${greeting}`);
