// Paired server child: one or more connect-mesh servers in one process, each
// a variant of the same unary service (OrderService/CreateOrder with a
// trivial handler, or EchoService/Echo): idempotency off / memory store /
// Redis store, logger off / info to a file, optional per-key execution
// counters for the exactly-once soak. Driven over IPC (see protocol.ts).

import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { OrderService } from "../../../gen/example/orders/v1/orders_pb.js";
import { EchoService } from "../../../gen/test/v1/echo_pb.js";
import {
  createMemoryIdempotencyStore,
  createMeshServer,
  createRedisIdempotencyStore,
  type MeshServer,
  type RedisIdempotencyStore,
} from "../../../src/index.js";
import { serveCommands, WindowMeter } from "../child.js";
import { type FileLog, openFileLog, summarizeLog } from "./file-log.js";
import type {
  KeyCounts,
  LogSummary,
  PairedServerSpec,
  ServerChildInit,
  ServerChildReady,
  ServerCounters,
  ServerWindow,
} from "./protocol.js";

interface Hosted {
  readonly spec: PairedServerSpec;
  readonly server: MeshServer;
  readonly redisStore: RedisIdempotencyStore | undefined;
  readonly log: FileLog | undefined;
  executions: number;
  readonly events: Map<string, number>;
  readonly perKey: Map<string, number>;
}

const hosted: Hosted[] = [];
const meter = new WindowMeter();

async function start(spec: PairedServerSpec): Promise<{ name: string; address: string }> {
  const log = openFileLog(spec.log);
  let redisStore: RedisIdempotencyStore | undefined;
  if (spec.idempotency === "redis") {
    if (spec.redis === undefined) {
      throw new Error(`server ${spec.name}: idempotency "redis" needs a redis spec`);
    }
    redisStore = createRedisIdempotencyStore({
      connection: { host: spec.redis.host, port: spec.redis.port },
      keyPrefix: spec.redis.keyPrefix,
    });
    // Connect now, so the first call does not pay for it.
    await (redisStore.redis as Redis).ping();
  }
  const h: Hosted = {
    spec,
    server: undefined as unknown as MeshServer,
    redisStore,
    log,
    executions: 0,
    events: new Map(),
    perKey: new Map(),
  };
  const delayMs = spec.handlerDelayMs ?? 0;
  const countKeys = spec.countKeys === true;
  const server = createMeshServer({
    routes: (router) => {
      if (spec.service === "orders") {
        let n = 0;
        router.service(OrderService, {
          async createOrder(req) {
            h.executions++;
            if (countKeys) {
              h.perKey.set(req.customerId, (h.perKey.get(req.customerId) ?? 0) + 1);
            }
            if (delayMs > 0) {
              await sleep(delayMs);
            }
            let totalCents = 0n;
            for (const item of req.items) {
              totalCents += item.unitPriceCents * BigInt(item.quantity);
            }
            return {
              order: { id: `o-${++n}`, customerId: req.customerId, items: req.items, totalCents },
            };
          },
        });
      } else {
        router.service(EchoService, {
          echo(req) {
            h.executions++;
            return { payload: req.payload };
          },
        });
      }
    },
    connect: { acceptCompression: [] },
    logger: log === undefined ? false : log.logger,
    idempotency:
      spec.idempotency === "off"
        ? false
        : {
            store: redisStore ?? createMemoryIdempotencyStore(),
            ...(spec.ttlMs === undefined ? {} : { ttlMs: spec.ttlMs }),
          },
    onEvent(e) {
      h.events.set(e.type, (h.events.get(e.type) ?? 0) + 1);
    },
  });
  (h as { server: MeshServer }).server = server;
  const bound = await server.listen({ host: "127.0.0.1", port: 0 });
  hosted.push(h);
  return { name: spec.name, address: bound.address };
}

function counters(): ServerCounters[] {
  return hosted.map((h) => ({
    name: h.spec.name,
    executions: h.executions,
    events: Object.fromEntries(h.events),
    logBytes: h.log?.written() ?? 0,
  }));
}

serveCommands({
  async init(args): Promise<ServerChildReady> {
    const init = args as ServerChildInit;
    const servers = await Promise.all(init.servers.map(start));
    return { servers };
  },
  "mark-begin"(): ServerCounters[] {
    meter.begin();
    return counters();
  },
  "mark-end"(): ServerWindow {
    const w = meter.end();
    return {
      elapsedMs: w.elapsedMs,
      cpuUs: w.cpuUs,
      maxRssBytes: w.maxRssBytes,
      warnings: w.warnings,
      counters: counters(),
    };
  },
  counters(): ServerCounters[] {
    return counters();
  },
  "key-counts"(): KeyCounts {
    return {
      servers: hosted.map((h) => ({ name: h.spec.name, perKey: Object.fromEntries(h.perKey) })),
    };
  },
  async "log-summary"(): Promise<LogSummary> {
    const files: LogSummary["files"][number][] = [];
    for (const h of hosted) {
      if (h.log !== undefined) {
        await h.log.flush();
        files.push(await summarizeLog(h.spec.name, h.log.path, h.executions));
      }
    }
    return { files };
  },
  async close() {
    await Promise.all(hosted.map((h) => h.server.close({ graceMs: 200 })));
    await Promise.all(hosted.map((h) => h.redisStore?.close()));
    await Promise.all(hosted.map((h) => h.log?.flush()));
    setTimeout(() => process.exit(0), 20).unref();
  },
});
