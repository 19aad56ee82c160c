import { createServer } from "node:net";
import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  createRedisRateLimitStore,
  type MeshServer,
  type MeshTransport,
  type RateLimitEvent,
  type RedisRateLimitStore,
} from "../../src/index.js";
import { parsePushback } from "../../src/retry/deadline-math.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import {
  createTestRedis,
  REDIS_HOST,
  REDIS_PORT,
  requireRedis,
  type TestRedis,
} from "../support/redis.js";

const hasRedis = await requireRedis();

// One token per 100 s: nothing refills during the test, so counts are exact.
const SLOW_RATE = 0.01;

interface Replica {
  readonly server: MeshServer;
  readonly address: string;
  handled: number;
}

async function startReplica(
  store: RedisRateLimitStore,
  burst: number,
  failMode: "open" | "closed" = "open",
  events: RateLimitEvent[] = [],
): Promise<Replica> {
  const impl = createEchoImpl();
  const replica = { handled: 0 } as Replica;
  const counted: ServiceImpl<typeof EchoService> = {
    ...impl,
    echo(req, ctx) {
      replica.handled++;
      return impl.echo(req, ctx);
    },
  };
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, counted),
    logger: false,
    rateLimit: {
      limits: { ratePerSecond: SLOW_RATE, burst },
      store,
      failMode,
      onEvent: (e) => events.push(e),
    },
  });
  const bound = await server.listen();
  return Object.assign(replica, { server, address: bound.address });
}

function transportTo(addresses: readonly string[]): MeshTransport {
  return createMeshTransport({
    target: `static:///${addresses.join(",")}`,
    logger: false,
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
  });
}

const settle = <T>(p: Promise<T>): Promise<T | ConnectError> =>
  p.catch((e: unknown) => ConnectError.from(e));

describe.skipIf(!hasRedis)("Redis rate limit shared by 3 replicas", () => {
  let t: TestRedis;
  const stores: RedisRateLimitStore[] = [];
  const replicas: Replica[] = [];
  const transports: MeshTransport[] = [];

  beforeAll(async () => {
    t = createTestRedis();
    for (let i = 0; i < 3; i++) {
      // Each replica has its own connection, as separate processes would.
      const store = createRedisRateLimitStore({
        connection: { host: REDIS_HOST, port: REDIS_PORT },
        keyPrefix: t.keyPrefix,
        // The machine is shared and busy: a generous bound, not the default.
        timeoutMs: 5_000,
      });
      stores.push(store);
      replicas.push(await startReplica(store, 10));
    }
    // One client per replica: each replica sees 10 of the 30 calls.
    for (const r of replicas) transports.push(transportTo([r.address]));
  });
  afterAll(async () => {
    for (const c of transports) await c.close();
    for (const r of replicas) await r.server.close({ graceMs: 0 });
    for (const s of stores) await s.close();
    await t?.close();
  });

  it("admits exactly the shared burst over all replicas, then RESOURCE_EXHAUSTED with pushback", async () => {
    const clients = transports.map((c) => createClient(EchoService, c));
    // Concurrent calls, 10 to each replica: the Lua script makes each take atomic.
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => settle(clients[i % 3]!.echo({}))),
    );
    const refused = results.filter((r): r is ConnectError => r instanceof ConnectError);
    expect(refused).toHaveLength(20);
    for (const e of refused) {
      expect(e.code).toBe(Code.ResourceExhausted);
      const p = parsePushback(e.metadata.get("grpc-retry-pushback-ms"));
      expect(p?.retry === true && p.delayMs).toBeGreaterThan(0);
      expect(p?.retry === true && p.delayMs).toBeLessThanOrEqual(100_000);
    }
    expect(replicas.reduce((n, r) => n + r.handled, 0)).toBe(10);
    // Per-replica limits would have admitted 30 (10 each): the limit was shared.
    // One bucket key, expiring once it would be full again (100 s * 10 + 1 s).
    const keys = await t.keys();
    expect(keys).toHaveLength(1);
    const pttl = await t.redis.pttl(keys[0]!);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_001_000);
    expect(keys[0]).toBe(stores[0]!.keyFor("test.v1.EchoService/Echo"));
  });
});

/** deadPort returns a port nothing listens on (bound, then closed). */
async function deadPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe("Redis down: the fail mode holds", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function downSetup(failMode: "open" | "closed") {
    const store = createRedisRateLimitStore({
      connection: { host: "127.0.0.1", port: await deadPort() },
    });
    cleanup.push(() => store.close());
    const events: RateLimitEvent[] = [];
    const replica = await startReplica(store, 1, failMode, events);
    cleanup.push(() => replica.server.close({ graceMs: 0 }));
    const transport = transportTo([replica.address]);
    cleanup.push(() => transport.close());
    return { echo: createClient(EchoService, transport), replica, events };
  }

  it("failMode open admits every call (beyond the burst) and reports the store errors", async () => {
    const { echo, replica, events } = await downSetup("open");
    for (let i = 0; i < 5; i++) {
      expect(await settle(echo.echo({}))).not.toBeInstanceOf(ConnectError);
    }
    expect(replica.handled).toBe(5);
    const errors = events.filter((e) => e.type === "rate-limit-store-error");
    expect(errors).toHaveLength(5);
    expect(errors[0]).toMatchObject({ failMode: "open", method: "test.v1.EchoService/Echo" });
  });

  it("failMode closed refuses every call with UNAVAILABLE, handler not run, and does not hang", async () => {
    const { echo, replica, events } = await downSetup("closed");
    for (let i = 0; i < 5; i++) {
      // A deadline far above the store's 100 ms timeout: the refusal is the limiter's own.
      const r = await settle(echo.echo({}, { timeoutMs: 30_000 }));
      expect(r).toBeInstanceOf(ConnectError);
      expect((r as ConnectError).code).toBe(Code.Unavailable);
      expect((r as ConnectError).rawMessage).toBe(
        "rate limit for test.v1.EchoService/Echo cannot be checked: the rate limit store is unavailable",
      );
    }
    expect(replica.handled).toBe(0);
    expect(events.filter((e) => e.type === "rate-limit-store-error")).toHaveLength(5);
  });

  it("validates its options", () => {
    expect(() => createRedisRateLimitStore({})).toThrow(/exactly one of redis and connection/);
    expect(() =>
      createRedisRateLimitStore({ connection: "redis://127.0.0.1:1", timeoutMs: 0 }),
    ).toThrow(/timeoutMs 0 must be a number > 0/);
  });
});
