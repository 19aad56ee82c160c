// A consumer's CommonJS client in plain JS: require() of the ESM package
// (Node >= 20.19 loads ES modules synchronously; connect-mesh has no top-level await).
const { createClient } = require("@connectrpc/connect");
const { createMeshTransport } = require("connect-mesh");
const { GreetService } = require("./out/gen/greet/v1/greet_pb.js");

async function main() {
  const transport = createMeshTransport({ target: process.argv[2] ?? "", defaultTimeoutMs: 5_000 });
  const greeter = createClient(GreetService, transport);
  const { greeting } = await greeter.greet({ name: "cjs" });
  await transport.close();
  if (greeting !== "hello, cjs") throw new Error(`unexpected greeting ${JSON.stringify(greeting)}`);
  console.log(`cjs client: ${greeting}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
