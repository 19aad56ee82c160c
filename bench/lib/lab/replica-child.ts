// Lab replica child: one or more connect-mesh servers serving
// example.orders.v1.OrderService/GetOrder in one process, each with its own
// fault injector (service time = injected delay, so the process's CPU is not
// what is measured), optionally a worker queue that gives that service time a
// capacity, and server-side attempt counters, optionally registered in etcd or
// the embedded mesh registry. Driven over IPC (see protocol.ts).

import type { Interceptor } from "@connectrpc/connect";
import { OrderService } from "../../../gen/example/orders/v1/orders_pb.js";
import {
  createFaultInjector,
  createMeshServer,
  type FaultInjector,
  type MeshServer,
  type ServiceRegistry,
} from "../../../src/index.js";
import { serveCommands } from "../child.js";
import {
  nowMs,
  type ReplicaCounts,
  type ReplicaInit,
  type ReplicaReady,
  type SetFaults,
  type SetFaultsDone,
} from "./protocol.js";
import { createRegistry } from "./registry.js";

// The mesh logs one JSON line per call to stdout by default (MESH_LOG_LEVEL,
// default info); these suites measure balancing and retries, not logging.
// BENCH_MESH_LOG_LEVEL sets another level.
process.env.MESH_LOG_LEVEL = process.env.BENCH_MESH_LOG_LEVEL ?? "silent";

interface Replica {
  readonly name: string;
  readonly server: MeshServer;
  readonly faults: FaultInjector;
  readonly counts: {
    attempts: number;
    ok: number;
    errors: number;
    byPhase: Map<string, { attempts: number; ok: number; errors: number }>;
  };
}

const replicas: Replica[] = [];

/**
 * workerQueue lets at most `workers` calls through at a time, first come
 * first served; the rest wait. Placed ahead of the fault injector, it turns
 * the injected delay into a service time with a capacity of
 * workers / delay: past it, calls queue and latency grows with the queue, as
 * on a real server. A call whose signal aborts while it waits leaves the queue.
 */
function workerQueue(workers: number): Interceptor {
  if (!Number.isInteger(workers) || workers < 1) {
    throw new RangeError(`workers ${workers} must be an integer >= 1`);
  }
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
  return (next) => async (req) => {
    await acquire(req.signal);
    try {
      return await next(req);
    } finally {
      release();
    }
  };
}
let registry: ServiceRegistry | undefined;

function countingInterceptor(counts: Replica["counts"]): Interceptor {
  return (next) => async (req) => {
    counts.attempts++;
    const key = `${req.header.get("x-bench-client") ?? ""}/${req.header.get("x-bench-phase") ?? ""}`;
    let c = counts.byPhase.get(key);
    if (c === undefined) {
      c = { attempts: 0, ok: 0, errors: 0 };
      counts.byPhase.set(key, c);
    }
    c.attempts++;
    try {
      const res = await next(req);
      counts.ok++;
      c.ok++;
      return res;
    } catch (e) {
      counts.errors++;
      c.errors++;
      throw e;
    }
  };
}

serveCommands({
  async init(args): Promise<ReplicaReady> {
    const init = args as ReplicaInit;
    if (init.registration !== undefined) {
      registry = createRegistry(init.registration.registry);
    }
    const ready: ReplicaReady["replicas"][number][] = [];
    await Promise.all(
      init.replicas.map(async (spec) => {
        const counts: Replica["counts"] = { attempts: 0, ok: 0, errors: 0, byPhase: new Map() };
        const faults = createFaultInjector(spec.faults ?? {});
        const name = spec.name;
        const server = createMeshServer({
          routes: (router) =>
            router.service(OrderService, {
              getOrder: (req) => ({ order: { id: req.id, servedBy: name } }),
            }),
          interceptors: [
            countingInterceptor(counts),
            ...(spec.workers === undefined ? [] : [workerQueue(spec.workers)]),
          ],
          faults,
          connect: { acceptCompression: [] },
          ...(init.registration === undefined || registry === undefined
            ? {}
            : {
                registration: {
                  registry,
                  service: init.registration.service,
                  instanceId: name,
                  deregisterDelayMs: 0,
                },
              }),
        });
        const bound = await server.listen({ host: "127.0.0.1", port: 0 });
        replicas.push({ name, server, faults, counts });
        ready.push({ name, address: bound.address, readyAtMs: nowMs() });
      }),
    );
    // Keep the spec order (listen() may resolve in any order).
    const order = init.replicas.map((r) => r.name);
    ready.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
    return { replicas: ready };
  },
  "set-faults"(args): SetFaultsDone {
    const { names, config } = args as SetFaults;
    for (const r of replicas) {
      if (names === undefined || names.includes(r.name)) {
        r.faults.set(config);
      }
    }
    return { atMs: nowMs() };
  },
  counts(): ReplicaCounts {
    return {
      atMs: nowMs(),
      replicas: replicas.map((r) => ({
        name: r.name,
        attempts: r.counts.attempts,
        ok: r.counts.ok,
        errors: r.counts.errors,
        byPhase: Object.fromEntries([...r.counts.byPhase].map(([k, v]) => [k, { ...v }])),
      })),
    };
  },
  async close() {
    await Promise.all(replicas.map((r) => r.server.close({ graceMs: 100 })));
    await registry?.close();
    setTimeout(() => process.exit(0), 20).unref();
  },
});
