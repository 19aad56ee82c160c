// One replica of the example OrderService, run as its own process by
// examples/demo.ts (child_process.fork). It registers itself under "orders",
// injects the faults of its role, and reports counters to the parent over IPC.
// `npx tsx examples/demo/replica.ts '<ReplicaConfig JSON>'` runs one by hand.
import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { pino } from "pino";
import { createFileIdempotencyStore } from "../../src/idempotency/file-store.js";
import { createRedisIdempotencyStore } from "../../src/idempotency/redis-store.js";
import type { IdempotencyStore } from "../../src/idempotency/store.js";
import {
  createEtcdRegistry,
  createFaultInjector,
  createIdentitySource,
  createLogDestination,
  createMeshRegistry,
  createMeshServer,
  type FaultConfig,
  type ServiceRegistry,
} from "../../src/index.js";
import { createOrderService, OrderService } from "../order-service.js";
import { createFileOrderRepository } from "./order-repository.js";
import {
  type ParentMessage,
  type ReplicaConfig,
  type ReplicaMessage,
  type ReplicaStats,
  SERVICE,
} from "./protocol.js";

const config = JSON.parse(process.argv[2] ?? "null") as ReplicaConfig | null;
if (config === null) throw new Error("usage: replica.ts '<ReplicaConfig JSON>'");

const send = (m: ReplicaMessage): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected || process.send === undefined) return resolve();
    process.send(m, undefined, {}, () => resolve());
  });

const destination = createLogDestination({ dest: config.logFile });
const logger = pino({ level: "info", base: { proc: config.name, pid: process.pid } }, destination);

const ORDERS = OrderService.typeName;
const faultsFor: Record<ReplicaConfig["role"], FaultConfig> = {
  slow: { methods: { [ORDERS]: { delayMs: 20, delayJitterMs: 20 } } },
  flaky: { methods: { [ORDERS]: { abortPercent: 30, abortCode: Code.Unavailable } } },
  killed: {},
  steady: {},
};
const faults = createFaultInjector(faultsFor[config.role]);

const requests: Record<string, number> = {};
const idempotency: Record<string, number> = {};
let lostResponses = 0;
let executions = 0;
const stats = (): ReplicaStats => ({
  requests: { ...requests },
  faults: faults.stats(),
  lostResponses,
  executions,
  idempotency: { ...idempotency },
});

// countRequests counts every OrderService call that reaches this replica.
const countRequests: Interceptor = (next) => (req) => {
  if (req.service.typeName === ORDERS) {
    requests[req.method.name] = (requests[req.method.name] ?? 0) + 1;
  }
  return next(req);
};

// loseResponses (flaky replica): 5% of CreateOrder calls create the order,
// then the answer is lost on the way back — the case idempotency keys exist
// for. User interceptors run outside the idempotency one, so the outcome is
// already stored when this throws; the client's retry gets it replayed.
const loseResponses: Interceptor = (next) => async (req) => {
  const res = await next(req);
  if (req.method.name === "CreateOrder" && Math.random() < 0.05) {
    lostResponses++;
    throw new ConnectError(
      "injected fault: response lost after the order was created",
      Code.Unavailable,
    );
  }
  return res;
};

// Every CreateOrder run is written down at once (a write(2), which survives
// SIGKILL) so the parent can check that no key ran twice.
mkdirSync(config.ordersDir, { recursive: true });
const executionsFd = openSync(config.executionsFile, "a");
const base = createOrderService(config.name, {
  orders: createFileOrderRepository(config.ordersDir),
});
const service: typeof base = {
  ...base,
  createOrder(req, ctx) {
    executions++;
    const key = ctx.requestHeader.get("idempotency-key") ?? "-";
    writeSync(executionsFd, `${key}\t${config.name}#${config.incarnation}\n`);
    return base.createOrder(req, ctx);
  },
};

const registry: ServiceRegistry =
  config.registry.kind === "mesh"
    ? createMeshRegistry({ dir: config.registry.dir, leaseTtlMs: 2_000 })
    : createEtcdRegistry({
        endpoints: config.registry.endpoints,
        prefix: config.registry.prefix,
        leaseTtlMs: 2_000,
      });
const store: IdempotencyStore & { close?: () => Promise<void> } =
  config.store.kind === "file"
    ? createFileIdempotencyStore({ dir: config.store.dir })
    : createRedisIdempotencyStore({
        connection: config.store.url,
        keyPrefix: config.store.keyPrefix,
      });

// --mtls: serve mutual TLS with the replica's identity files (watched:
// replacing them rotates the certificate without a restart).
const identitySource =
  config.identity === undefined ? undefined : createIdentitySource({ ...config.identity, logger });

const server = createMeshServer({
  routes: (router) => router.service(OrderService, service),
  ...(identitySource === undefined ? {} : { identity: { source: identitySource } }),
  interceptors: config.role === "flaky" ? [countRequests, loseResponses] : [countRequests],
  faults,
  idempotency: {
    store,
    // Short leases: a claim left by a killed replica is taken over within 1.5
    // s, instead of holding its retries until their deadline.
    maxLeaseMs: 1_000,
    leaseMarginMs: 500,
    onEvent: (e) => {
      idempotency[e.type] = (idempotency[e.type] ?? 0) + 1;
    },
  },
  registration: {
    registry,
    service: SERVICE,
    instanceId: config.name,
    metadata: { version: `${config.incarnation}` },
    deregisterDelayMs: 300,
  },
  onEvent: (e) => {
    if (e.type === "registered" || e.type === "deregistered" || e.type === "re-registered") {
      void send({ type: "registry", event: e.type, address: e.registration.address });
    } else if (e.type === "lease-lost" || e.type === "error") {
      void send({ type: "registry", event: e.type });
    }
  },
  logger,
});

const { address } = await server.listen({ port: 0 });
void send({ type: "ready", address, pid: process.pid });
const ticker = setInterval(() => void send({ type: "stats", stats: stats() }), 250);

let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  await server.close({ graceMs: 1_000 }).catch(() => {});
  await registry.close().catch(() => {});
  await store.close?.().catch(() => {});
  identitySource?.close();
  closeSync(executionsFd);
  await send({ type: "stopped", stats: stats() });
  destination.flushSync();
  process.exit(code);
};
process.on("message", (m: ParentMessage) => {
  if (m.type === "stop") void stop(0);
});
// The parent is gone (even SIGKILLed): never outlive it.
process.on("disconnect", () => void stop(1));
// Ctrl-C reaches the whole process group; the parent decides when we stop.
process.on("SIGINT", () => {});
process.on("SIGTERM", () => void stop(0));
