// Counts the async resources (PROMISE, TickObject, Timeout, ...) and the
// AbortControllers / abort listeners one unary call creates, with a mesh
// server and a raw node:http2 client (callbacks) in one process, one call at
// a time. The raw client's share is 2 promises (its `new Promise` and the
// loop's await), one HTTP2STREAM and about half of the TickObjects. Each
// promise pays the call scope's AsyncLocalStorage init hook, so this is a
// count to cut (issue 13). `--stacks TYPE` prints where one call creates
// resources of TYPE instead.
//
//   npx tsx bench/async-resources.ts [--lean] [--deadline] [--stacks PROMISE]
//
// Loads `dist/` (build it first: `npx tsc -p tsconfig.build.json`), as the
// benches do. Measured on 2026-12-02, unary, server promises per call:
// lean 10 -> 7, mesh (NO_SIDE_EFFECTS method) 12 -> 7.

import { createHook } from "node:async_hooks";
import * as http2 from "node:http2";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { EchoNoSideEffectsService } from "../gen/test/v1/echo_pb.js";
import { loadMeshLibrary } from "./lib/mesh-library.js";

const { values } = parseArgs({
  options: {
    lean: { type: "boolean", default: false },
    deadline: { type: "boolean", default: false },
    stacks: { type: "string" },
    calls: { type: "string", default: "500" },
  },
});
const { createMeshServer } = await loadMeshLibrary();
const impl: ServiceImpl<typeof EchoNoSideEffectsService> = {
  echoNoSideEffects: async (req) => ({ payload: req.payload }),
};
const server = createMeshServer({
  routes: (router) => router.service(EchoNoSideEffectsService, impl),
  connect: { acceptCompression: [] },
  logger: false,
  ...(values.lean ? { idempotency: false } : {}),
});
const bound = await server.listen({ host: "127.0.0.1", port: 0 });

let counting = false;
const counts = new Map<string, number>();
const stacks: string[] = [];
const count = (type: string) => counts.set(type, (counts.get(type) ?? 0) + 1);
createHook({
  init(_id, type) {
    if (!counting) return;
    count(type);
    if (type === values.stacks) {
      const frames = (new Error().stack ?? "").split("\n").slice(4, 8);
      stacks.push(frames.map((f) => f.trim()).join(" | "));
    }
  },
}).enable();
const RealAbortController = globalThis.AbortController;
globalThis.AbortController = class extends RealAbortController {
  constructor() {
    super();
    if (counting) count("AbortController");
  }
};
const realAdd = EventTarget.prototype.addEventListener;
EventTarget.prototype.addEventListener = function (this: EventTarget, ...args) {
  if (counting && args[0] === "abort") count("abort listener");
  return realAdd.apply(this, args);
};

const input = EchoNoSideEffectsService.method.echoNoSideEffects.input;
const message = toBinary(input, create(input, { payload: new Uint8Array(128) }));
const body = Buffer.alloc(5 + message.length);
body.writeUInt32BE(message.length, 1);
body.set(message, 5);
const session = http2.connect(bound.url);
const headers: http2.OutgoingHttpHeaders = {
  ":method": "POST",
  ":path": `/${EchoNoSideEffectsService.typeName}/EchoNoSideEffects`,
  "content-type": "application/grpc",
  te: "trailers",
  ...(values.deadline ? { "grpc-timeout": "10S" } : {}),
};
const call = () =>
  new Promise<void>((resolve) => {
    const stream = session.request(headers);
    stream.on("data", () => {});
    stream.on("close", resolve);
    stream.end(body);
  });

for (let i = 0; i < 200; i++) await call();
const n = values.stacks === undefined ? Number(values.calls) : 1;
counting = true;
for (let i = 0; i < n; i++) await call();
counting = false;
if (values.stacks !== undefined) {
  for (const s of stacks) console.log(`- ${s}`);
} else {
  const row = [...counts].map(([type, c]) => `${type} ${(c / n).toFixed(2)}`).join(", ");
  console.log(
    `per call (${values.lean ? "lean" : "mesh"} server${values.deadline ? ", deadline" : ""}): ${row}`,
  );
}
session.close();
await server.close({ graceMs: 100 });
