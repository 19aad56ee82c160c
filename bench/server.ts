// Benchmark server child: started by the runner with child_process.fork,
// driven over IPC (see lib/protocol.ts). Serves EchoService on 127.0.0.1.

import { serveCommands, WindowMeter } from "./lib/child.js";
import type { ProcessWindow, ServerInit, ServerReady } from "./lib/protocol.js";
import { loadStack } from "./lib/stacks/index.js";
import type { EchoServerHandle } from "./lib/stacks/types.js";

let server: EchoServerHandle | undefined;
const meter = new WindowMeter();

serveCommands({
  async init(args): Promise<ServerReady> {
    const { spec } = args as ServerInit;
    const stack = await loadStack(spec.stack);
    server = await stack.startServer(spec.options ?? {});
    return { port: server.port };
  },
  "mark-begin"() {
    meter.begin();
  },
  "mark-end"(): ProcessWindow {
    return meter.end();
  },
  async close() {
    const s = server;
    server = undefined;
    await s?.close();
    // Leave once the reply is on its way.
    setTimeout(() => process.exit(0), 20).unref();
  },
});
