// Overload suite server child: one connect-mesh server serving
// test.v1.EchoService/Echo with a fixed capacity, in its own process, with
// or without the adaptive concurrency limit. Two kinds of capacity:
// - "sleep": a FIFO queue of `workers` slots in front of a `serviceMs` wait
//   (an injected service time: latency grows with the queue, CPU stays idle);
// - "cpu": `cpuMs` of busy CPU per call in 1 ms slices that yield between
//   them, so concurrent calls share the one event loop (processor sharing).
// Both stop early when the call is cancelled or times out.

import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import { EchoService } from "../../../gen/test/v1/echo_pb.js";
import {
  type AdaptiveConcurrencyOptions,
  createMeshServer,
  type LimitEvent,
  type MeshServer,
} from "../../../src/index.js";
import { serveCommands } from "../child.js";

process.env.MESH_LOG_LEVEL = "silent";

/** OverloadServerInit configures the child. */
export interface OverloadServerInit {
  readonly variant: "sleep" | "cpu";
  readonly workers: number;
  readonly serviceMs: number;
  readonly cpuMs: number;
  /** adaptive turns the adaptive limit on (options as given); absent: no limit (today's default). */
  readonly adaptive?: AdaptiveConcurrencyOptions;
}

/** LimitPoint is one limit change, at epoch ms. */
export interface LimitPoint {
  readonly atMs: number;
  readonly limit: number;
}

const epochMs = () => performance.timeOrigin + performance.now();

let server: MeshServer | undefined;
const limits: LimitPoint[] = [];
let shed = 0;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function workerQueue(workers: number) {
  let busy = 0;
  const waiting: Array<() => void> = [];
  const acquire = (signal: AbortSignal): Promise<void> => {
    if (busy < workers) {
      busy++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener("abort", onAbort);
        busy++;
        resolve();
      };
      const onAbort = () => {
        const i = waiting.indexOf(grant);
        if (i >= 0) waiting.splice(i, 1);
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      waiting.push(grant);
    });
  };
  const release = () => {
    busy--;
    waiting.shift()?.();
  };
  return { acquire, release };
}

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin: the handler's CPU work
  }
}

function impl(init: OverloadServerInit): Partial<ServiceImpl<typeof EchoService>> {
  if (init.variant === "sleep") {
    const q = workerQueue(init.workers);
    return {
      async echo(req, ctx) {
        await q.acquire(ctx.signal);
        try {
          await sleep(init.serviceMs, ctx.signal);
        } finally {
          q.release();
        }
        return { payload: req.payload, servedBy: "sleep" };
      },
    };
  }
  return {
    async echo(req, ctx) {
      for (let done = 0; done < init.cpuMs; done++) {
        ctx.signal.throwIfAborted();
        busyFor(Math.min(1, init.cpuMs - done));
        await yieldToLoop();
      }
      return { payload: req.payload, servedBy: "cpu" };
    },
  };
}

serveCommands({
  async init(raw) {
    const init = raw as OverloadServerInit;
    const onEvent = (e: LimitEvent) => {
      if (e.type === "limit-changed") limits.push({ atMs: epochMs(), limit: e.to });
      else shed++;
    };
    server = createMeshServer({
      routes: (r) => r.service(EchoService, impl(init)),
      logger: false,
      idempotency: false,
      ...(init.adaptive === undefined
        ? {}
        : { concurrencyLimit: { adaptive: init.adaptive, onEvent } }),
    });
    const bound = await server.listen();
    if (init.adaptive !== undefined) {
      limits.push({ atMs: epochMs(), limit: init.adaptive.initialLimit ?? 20 });
    }
    return { address: bound.address };
  },
  limits: () => ({ limits, shed }),
  async stop() {
    await server?.close({ graceMs: 0 });
    setTimeout(() => process.exit(0), 50);
  },
});
