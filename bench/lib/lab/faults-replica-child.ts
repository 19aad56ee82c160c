// Faults suite replica child: one connect-mesh server per process (so
// SIGKILL takes down exactly one replica, in-flight calls included) serving
// example.orders.v1.OrderService/CreateOrder, a side-effecting method, with
// the mesh's default idempotency layer on a Redis store shared by all
// replicas. The handler's side effect is one line appended to this process's
// execution log before it waits out its service time (and another line when
// it returns, so calls cut off by a SIGKILL show); appendFileSync has
// handed the line to the kernel before the handler goes on, so a SIGKILL
// cannot lose an execution that happened. Optionally registered in etcd.
// Driven over IPC by bench/scenarios/faults.ts.

import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { OrderService } from "../../../gen/example/orders/v1/orders_pb.js";
import {
  createMeshServer,
  createRedisIdempotencyStore,
  type MeshServer,
  type RedisIdempotencyStore,
  type ServiceRegistry,
} from "../../../src/index.js";
import { serveCommands } from "../child.js";
import { nowMs, type RegistrySpec } from "./protocol.js";
import { createRegistry } from "./registry.js";

process.env.MESH_LOG_LEVEL = process.env.BENCH_MESH_LOG_LEVEL ?? "silent";

/** FaultsReplicaInit configures the one server of a faults replica child. */
export interface FaultsReplicaInit {
  readonly name: string;
  /** port to listen on (a restarted replica takes its predecessor's); 0 picks one. */
  readonly port: number;
  readonly redis: { readonly host: string; readonly port: number; readonly keyPrefix: string };
  /**
   * execLog is the file each handler execution appends `S <customer_id>\n`
   * to (the side effect), and `E <customer_id>\n` when its handler returns.
   */
  readonly execLog: string;
  /** serviceMs is the handler's service time after its side effect. */
  readonly serviceMs: number;
  readonly registration?: { readonly registry: RegistrySpec; readonly service: string };
}

export interface FaultsReplicaReady {
  readonly name: string;
  readonly address: string;
  readonly pid: number;
  /** readyAtMs is when listen() resolved (bound, SERVING and, if configured, registered). */
  readonly readyAtMs: number;
}

/** FaultsReplicaCounts: handler executions and idempotency events by type since start. */
export interface FaultsReplicaCounts {
  readonly name: string;
  readonly executions: number;
  readonly events: Readonly<Record<string, number>>;
}

let server: MeshServer | undefined;
let store: RedisIdempotencyStore | undefined;
let registry: ServiceRegistry | undefined;
let name = "?";
let executions = 0;
const events = new Map<string, number>();

serveCommands({
  async init(args): Promise<FaultsReplicaReady> {
    const init = args as FaultsReplicaInit;
    name = init.name;
    store = createRedisIdempotencyStore({
      connection: { host: init.redis.host, port: init.redis.port },
      keyPrefix: init.redis.keyPrefix,
    });
    // Connect before serving; on a starved host one ping may exceed the
    // store's 1 s command timeout, so try a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        // A store that opened its connection holds an ioredis Redis.
        await (store.redis as Redis).ping();
        break;
      } catch (e) {
        if (attempt >= 10) throw e;
      }
    }
    if (init.registration !== undefined) {
      registry = createRegistry(init.registration.registry);
    }
    const serviceMs = init.serviceMs;
    const execLog = init.execLog;
    let n = 0;
    server = createMeshServer({
      routes: (router) =>
        router.service(OrderService, {
          async createOrder(req) {
            executions++;
            appendFileSync(execLog, `S ${req.customerId}\n`);
            if (serviceMs > 0) {
              await sleep(serviceMs);
            }
            appendFileSync(execLog, `E ${req.customerId}\n`);
            return {
              order: { id: `${name}-${++n}`, customerId: req.customerId, servedBy: name },
            };
          },
        }),
      connect: { acceptCompression: [] },
      logger: false,
      idempotency: { store },
      onEvent(e) {
        const key = !("keyDigest" in e)
          ? `registry:${e.type}`
          : e.type === "store-error"
            ? `store-error:${e.operation}`
            : e.type;
        events.set(key, (events.get(key) ?? 0) + 1);
      },
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
    const bound = await server.listen({ host: "127.0.0.1", port: init.port });
    return { name, address: bound.address, pid: process.pid, readyAtMs: nowMs() };
  },
  counts(): FaultsReplicaCounts {
    return { name, executions, events: Object.fromEntries(events) };
  },
  async close() {
    await server?.close({ graceMs: 100 });
    await registry?.close();
    await store?.close();
    setTimeout(() => process.exit(0), 20).unref();
  },
});
