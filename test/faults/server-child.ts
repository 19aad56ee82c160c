// A mesh server in its own process for the fault tests: it serves the test
// EchoService, counts handler runs, and answers {runs, rss} over IPC.

import { type Code, ConnectError } from "@connectrpc/connect";
import { EchoService } from "../../gen/test/v1/echo_pb.js";
import { createMeshServer } from "../../src/index.js";
import { sleep } from "../support/echo-service.js";

let runs = 0;
const server = createMeshServer({
  logger: false,
  routes: (r) =>
    r.service(EchoService, {
      async echo(req, ctx) {
        runs++;
        if (req.delayMs > 0) await sleep(req.delayMs, ctx.signal);
        if (req.failCode !== 0) throw new ConnectError(req.failMessage, req.failCode as Code);
        return { payload: req.payload, timeoutMs: ctx.timeoutMs() ?? 0, servedBy: "child" };
      },
      async echoClientStream(reqs) {
        let count = 0;
        for await (const _ of reqs) count++;
        return { count };
      },
    }),
});
const bound = await server.listen();
process.on("message", (m: { q: string }) => {
  if (m.q === "stats") {
    globalThis.gc?.();
    process.send?.({ runs, rss: process.memoryUsage().rss });
  }
});
process.on("disconnect", () => {
  server.close({ graceMs: 0 }).finally(() => process.exit(0));
});
process.send?.({ url: bound.url });
