// Request mirroring end to end: a primary and a shadow mesh server on
// loopback, a mesh client with `mirror`. Everything is counted on the servers
// and through the transport's events; nothing waits a fixed time.

import { createServer } from "node:net";
import {
  Code,
  ConnectError,
  createClient,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { EchoRequest } from "../../gen/test/v1/echo_pb.js";
import {
  createMemoryIdempotencyStore,
  createMeshServer,
  createMeshTransport,
  createMetrics,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_REPLAYED_HEADER,
  type IdempotencyStore,
  idempotencyKeyKey,
  type MeshServer,
  type MeshServerOptions,
  type MeshTransport,
  type MeshTransportEvent,
  type MeshTransportOptions,
  MIRROR_HEADER,
  type MirrorEvent,
} from "../../src/index.js";
import { createEchoImpl, EchoService, sleep } from "../support/echo-service.js";
import { seededRandom } from "../unit/seeded-random.js";

type MeshServerEvent = Parameters<NonNullable<MeshServerOptions["onEvent"]>>[0];

/** Counting is what one test server saw. */
interface Counting {
  /** calls counts Echo handler runs; marked those with the mirror header. */
  calls: number;
  marked: number;
  completed: number;
  aborted: number;
  active: number;
  maxActive: number;
  /** gate, when set, holds every Echo until it resolves (a stalled shadow). */
  gate: Promise<void> | undefined;
  /** delayMs delays every Echo (honouring cancellation). */
  delayMs: number;
  /** fail makes every Echo fail with INTERNAL. */
  fail: boolean;
}

function counting(): Counting {
  return {
    calls: 0,
    marked: 0,
    completed: 0,
    aborted: 0,
    active: 0,
    maxActive: 0,
    gate: undefined,
    delayMs: 0,
    fail: false,
  };
}

const servers: MeshServer[] = [];
const transports: MeshTransport[] = [];

afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.close({ graceMs: 0 })));
});

async function startServer(
  name: string,
  c: Counting,
  opts: {
    store?: IdempotencyStore;
    interceptors?: Interceptor[];
    onEvent?: (e: MeshServerEvent) => void;
  } = {},
): Promise<string> {
  const impl = createEchoImpl(name);
  const server = createMeshServer({
    logger: false,
    ...(opts.store === undefined ? {} : { idempotency: { store: opts.store } }),
    ...(opts.interceptors === undefined ? {} : { interceptors: opts.interceptors }),
    ...(opts.onEvent === undefined ? {} : { onEvent: opts.onEvent }),
    routes: (r) =>
      r.service(EchoService, {
        ...impl,
        async echo(req: EchoRequest, ctx: HandlerContext) {
          c.calls++;
          if (ctx.requestHeader.get(MIRROR_HEADER) === "1") c.marked++;
          c.active++;
          c.maxActive = Math.max(c.maxActive, c.active);
          try {
            if (c.gate !== undefined) {
              const gate = c.gate;
              await new Promise<void>((resolve, reject) => {
                gate.then(resolve, reject);
                ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), {
                  once: true,
                });
              });
            }
            if (c.delayMs > 0) await sleep(c.delayMs, ctx.signal);
            if (c.fail) throw new ConnectError("shadow is broken", Code.Internal);
            const res = await impl.echo(req, ctx);
            c.completed++;
            return res;
          } catch (e) {
            if (ctx.signal.aborted) c.aborted++;
            throw e;
          } finally {
            c.active--;
          }
        },
      }),
  });
  servers.push(server);
  return (await server.listen()).address;
}

function transport(options: MeshTransportOptions): MeshTransport {
  const t = createMeshTransport({ logger: false, ...options });
  transports.push(t);
  return t;
}

function recorder() {
  const events: MirrorEvent[] = [];
  return {
    events,
    onEvent: (e: MeshTransportEvent) => {
      if (e.type.startsWith("mirror-")) events.push(e as MirrorEvent);
    },
    count: (type: MirrorEvent["type"]) => events.filter((e) => e.type === type).length,
  };
}

/** freePort returns a loopback port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

const POLL = { timeout: 20_000, interval: 10 };

// Generous per-test timeouts: hundreds of real calls on a shared, busy machine.
describe("request mirroring", { timeout: 90_000 }, () => {
  it("sends the sampled share of calls to the shadow, marked, and the primary sees no mark", async () => {
    const primary = counting();
    const shadow = counting();
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const rec = recorder();
    const seed = 42;
    const t = transport({
      target: primaryAddr,
      mirror: { shadow: shadowAddr, share: 0.3, maxInFlight: 1_000, random: seededRandom(seed) },
      onEvent: rec.onEvent,
    });
    const client = createClient(EchoService, t);
    const n = 120;
    for (let i = 0; i < n; i++) {
      const res = await client.echo({ payload: new Uint8Array([i % 256]) });
      expect(res.servedBy).toBe("primary");
    }
    // The same draws, replayed: exactly these calls were sampled.
    const draws = seededRandom(seed);
    let expected = 0;
    for (let i = 0; i < n; i++) if (draws() < 0.3) expected++;
    expect(expected).toBeGreaterThan(0.15 * n);
    expect(expected).toBeLessThan(0.45 * n);
    await expect.poll(() => shadow.completed, POLL).toBe(expected);
    expect(shadow.calls).toBe(expected);
    expect(shadow.marked).toBe(expected);
    expect(primary.calls).toBe(n);
    expect(primary.marked).toBe(0);
    expect(rec.count("mirror-sent")).toBe(expected);
    expect(rec.count("mirror-dropped")).toBe(0);
    expect(rec.count("mirror-failed")).toBe(0);
  });

  it("with a stalled shadow every primary call succeeds and no more than maxInFlight mirrors are outstanding", async () => {
    const primary = counting();
    const shadow = counting();
    let release!: () => void;
    shadow.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const rec = recorder();
    const t = transport({
      target: primaryAddr,
      // A deadline far beyond the test: the bound, not the deadline, frees nothing here.
      mirror: { shadow: shadowAddr, maxInFlight: 4, timeoutMs: 120_000 },
      onEvent: rec.onEvent,
    });
    const client = createClient(EchoService, t);
    const n = 60;
    let ok = 0;
    for (let batch = 0; batch < n / 10; batch++) {
      const results = await Promise.all(
        Array.from({ length: 10 }, () => client.echo({}, { timeoutMs: 30_000 })),
      );
      ok += results.filter((r) => r.servedBy === "primary").length;
    }
    expect(ok).toBe(n);
    expect(primary.completed).toBe(n);
    expect(rec.count("mirror-sent")).toBe(4);
    expect(rec.count("mirror-dropped")).toBe(n - 4);
    for (const e of rec.events) {
      if (e.type === "mirror-sent") expect(e.inFlight).toBeLessThanOrEqual(4);
      if (e.type === "mirror-dropped") expect(e.maxInFlight).toBe(4);
    }
    await expect.poll(() => shadow.active, POLL).toBe(4);
    expect(shadow.maxActive).toBe(4);
    expect(shadow.calls).toBe(4);
    // Closing the transport cancels the mirrors in flight.
    await t.close();
    await expect.poll(() => shadow.active, POLL).toBe(0);
    expect(shadow.completed).toBe(0);
    release();
  });

  it("with a slow shadow the bound frees slots as mirrors finish, and the primary never waits", async () => {
    const primary = counting();
    const shadow = counting();
    shadow.delayMs = 200;
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const rec = recorder();
    const t = transport({
      target: primaryAddr,
      mirror: { shadow: shadowAddr, maxInFlight: 3, timeoutMs: 30_000 },
      onEvent: rec.onEvent,
    });
    const client = createClient(EchoService, t);
    const n = 40;
    for (let i = 0; i < n; i++) {
      const res = await client.echo({});
      expect(res.servedBy).toBe("primary");
    }
    await expect.poll(() => rec.count("mirror-sent") - shadow.completed, POLL).toBe(0);
    expect(rec.count("mirror-sent") + rec.count("mirror-dropped")).toBe(n);
    expect(rec.count("mirror-sent")).toBeGreaterThanOrEqual(3);
    expect(shadow.maxActive).toBeLessThanOrEqual(3);
    expect(rec.count("mirror-failed")).toBe(0);
  });

  it("with the shadow down every primary call succeeds; mirrors fail, counted, never surfaced", async () => {
    const primary = counting();
    const primaryAddr = await startServer("primary", primary);
    const rec = recorder();
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const metrics = await createMetrics();
      const t = transport({
        target: primaryAddr,
        mirror: { shadow: `127.0.0.1:${await freePort()}`, maxInFlight: 8, timeoutMs: 5_000 },
        onEvent: rec.onEvent,
        metrics,
      });
      const client = createClient(EchoService, t);
      const n = 40;
      for (let i = 0; i < n; i++) {
        const res = await client.echo({});
        expect(res.servedBy).toBe("primary");
      }
      expect(primary.completed).toBe(n);
      await expect.poll(() => rec.count("mirror-failed"), POLL).toBe(rec.count("mirror-sent"));
      expect(rec.count("mirror-sent") + rec.count("mirror-dropped")).toBe(n);
      expect(rec.count("mirror-sent")).toBeGreaterThan(0);
      for (const e of rec.events) {
        if (e.type === "mirror-failed")
          expect(Code[e.code]).toMatch(/Unavailable|DeadlineExceeded/);
      }
      const text = await metrics.text();
      expect(text).toContain(
        `mesh_mirror_calls_total{target="${primaryAddr}",outcome="sent"} ${rec.count("mirror-sent")}`,
      );
      expect(text).toContain(
        `mesh_mirror_calls_total{target="${primaryAddr}",outcome="failed"} ${rec.count("mirror-failed")}`,
      );
      // Client metrics count the application's calls only, not the mirrors.
      expect(text).toMatch(/grpc_client_handled_total\{[^}]*grpc_code="OK"[^}]*\} 40/);
      expect(text).not.toMatch(/grpc_client_handled_total\{[^}]*grpc_code="Unavailable"/);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });

  it("errors of the shadow or of a broken shadow transport never reach the caller", async () => {
    const primary = counting();
    const shadow = counting();
    shadow.fail = true;
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const rec = recorder();
    const failing = transport({
      target: primaryAddr,
      mirror: { shadow: shadowAddr },
      onEvent: rec.onEvent,
    });
    const res = await createClient(EchoService, failing).echo({});
    expect(res.servedBy).toBe("primary");
    await expect.poll(() => rec.count("mirror-failed"), POLL).toBe(1);
    expect(rec.events.find((e) => e.type === "mirror-failed")).toMatchObject({
      code: Code.Internal,
      shadow: shadowAddr,
      target: primaryAddr,
    });

    // A Transport that throws at once, and one that rejects.
    for (const broken of [
      {
        unary() {
          throw new Error("boom");
        },
        stream() {
          throw new Error("boom");
        },
      },
      {
        unary: () => Promise.reject(new ConnectError("nope", Code.PermissionDenied)),
        stream: () => Promise.reject(new Error("nope")),
      },
    ] as unknown as Transport[]) {
      const r = recorder();
      const t = transport({ target: primaryAddr, mirror: { shadow: broken }, onEvent: r.onEvent });
      const out = await createClient(EchoService, t).echo({});
      expect(out.servedBy).toBe("primary");
      await expect.poll(() => r.count("mirror-failed"), POLL).toBe(1);
      expect(r.events.find((e) => e.type === "mirror-failed")).toMatchObject({
        shadow: "transport",
      });
    }
  });

  it("the primary finishing does not cancel its mirror", async () => {
    const primary = counting();
    const shadow = counting();
    shadow.delayMs = 300;
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const t = transport({ target: primaryAddr, mirror: { shadow: shadowAddr, timeoutMs: 30_000 } });
    const client = createClient(EchoService, t);
    const controller = new AbortController();
    const res = await client.echo({}, { signal: controller.signal });
    expect(res.servedBy).toBe("primary");
    // The caller's signal aborting after its call is over reaches no mirror.
    controller.abort();
    await expect.poll(() => shadow.completed, POLL).toBe(1);
    expect(shadow.aborted).toBe(0);
  });

  it("a mirror made inside a mesh handler outlives the incoming call (no inherited deadline or cancellation)", async () => {
    const primary = counting();
    const shadow = counting();
    // Longer than the incoming call's deadline: an inherited deadline would cut it.
    shadow.delayMs = 4_500;
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const downstream = transport({
      target: primaryAddr,
      mirror: { shadow: shadowAddr, timeoutMs: 30_000 },
    });
    const downstreamClient = createClient(EchoService, downstream);
    // A front server whose handler calls the primary, mirrored, and returns at once.
    const front = createMeshServer({
      logger: false,
      routes: (r) =>
        r.service(EchoService, {
          ...createEchoImpl("front"),
          async echo() {
            const res = await downstreamClient.echo({});
            return { servedBy: `front via ${res.servedBy}` };
          },
        }),
    });
    servers.push(front);
    const frontAddr = (await front.listen()).address;
    const caller = transport({ target: frontAddr });
    // The incoming call's deadline (3 s) passes before the shadow answers (4.5 s).
    const res = await createClient(EchoService, caller).echo({}, { timeoutMs: 3_000 });
    expect(res.servedBy).toBe("front via primary");
    await expect.poll(() => shadow.completed + shadow.aborted, POLL).toBe(1);
    expect(shadow.completed).toBe(1);
    expect(shadow.aborted).toBe(0);
  });

  it("does not mirror streaming calls", async () => {
    const primary = counting();
    const shadow = counting();
    const primaryAddr = await startServer("primary", primary);
    const shadowAddr = await startServer("shadow", shadow);
    const rec = recorder();
    const t = transport({
      target: primaryAddr,
      mirror: { shadow: shadowAddr },
      onEvent: rec.onEvent,
    });
    const client = createClient(EchoService, t);
    let got = 0;
    for await (const _ of client.echoServerStream({ repeat: 3 })) got++;
    expect(got).toBe(3);
    // A unary call afterwards is mirrored: the stream's absence is not a lag.
    await client.echo({});
    await expect.poll(() => shadow.completed, POLL).toBe(1);
    expect(rec.count("mirror-sent")).toBe(1);
  });

  it("a keyed call mirrored into a shadow sharing the idempotency store is no replay and runs the primary once", async () => {
    const store = createMemoryIdempotencyStore();
    const primary = counting();
    const shadow = counting();
    // The primary holds each call until the shadow has answered its copy:
    // the shadow claims and completes the key first, the worst order.
    const afterShadow: Interceptor = (next) => async (req) => {
      const want = req.header.get("x-test-wait-shadow");
      if (want !== null) {
        const until = performance.now() + 20_000;
        while (shadow.completed < Number(want) && performance.now() < until) await sleep(5);
      }
      return next(req);
    };
    const primaryAddr = await startServer("primary", primary, {
      store,
      interceptors: [afterShadow],
    });
    const shadowReplays: string[] = [];
    const shadowAddr = await startServer("shadow", shadow, {
      store,
      onEvent: (e) => {
        if (e.type === "replayed") shadowReplays.push(e.method);
      },
    });
    const t = transport({ target: primaryAddr, mirror: { shadow: shadowAddr } });
    const client = createClient(EchoService, t);

    const replayed: (string | null)[] = [];
    const call = async (headers: Record<string, string>, contextValues = createContextValues()) => {
      const res = await client.echo(
        { payload: new Uint8Array([7]) },
        {
          headers,
          contextValues,
          onHeader: (h) => replayed.push(h.get(IDEMPOTENCY_REPLAYED_HEADER)),
        },
      );
      expect(res.servedBy).toBe("primary");
    };

    await call({ [IDEMPOTENCY_KEY_HEADER]: "order-1", "x-test-wait-shadow": "1" });
    expect(shadow.completed).toBe(1);
    expect(primary.calls).toBe(1);
    expect(replayed).toEqual([null]);

    // The same key again: the primary's de-duplication still holds (a
    // replay, the handler not run again), and so does the shadow's own.
    await call({ [IDEMPOTENCY_KEY_HEADER]: "order-1" });
    expect(primary.calls).toBe(1);
    expect(replayed).toEqual([null, "true"]);
    await expect.poll(() => shadowReplays.length, POLL).toBe(1);
    expect(shadow.calls).toBe(1);

    // A key given through idempotencyKeyKey reaches the shadow as the header.
    const keyed = createContextValues().set(idempotencyKeyKey, "order-2");
    await call({ "x-test-wait-shadow": "2" }, keyed);
    expect(shadow.completed).toBe(2);
    expect(primary.calls).toBe(2);
    expect(replayed).toEqual([null, "true", null]);
  });

  it("validates the mirror option when the transport is built", () => {
    expect(() =>
      createMeshTransport({ target: "127.0.0.1:1", mirror: { shadow: "127.0.0.1:2", share: 2 } }),
    ).toThrow(RangeError);
    expect(() =>
      createMeshTransport({
        target: "127.0.0.1:1",
        mirror: { shadow: 42 as unknown as string },
      }),
    ).toThrow(/mirror.shadow must be a target string or a Connect Transport/);
    expect(() =>
      createMeshTransport({
        target: "127.0.0.1:1",
        mirror: { shadow: "127.0.0.1:2", maxInFlight: 0 },
      }),
    ).toThrow(/maxInFlight 0/);
  });
});
