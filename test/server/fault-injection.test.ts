import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createFaultInjector, type FaultConfig } from "../../src/faults/fault-injection.js";
import { decideFault, ruleFor } from "../../src/faults/fault-injection-rule.js";
import {
  type BoundAddress,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { parsePushback } from "../../src/retry/deadline-math.js";
import { Health } from "../../src/server/health-service.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";
import { seededRandom, sequence } from "../unit/seeded-random.js";

const ECHO = "test.v1.EchoService/Echo";

/** Swappable sources so one server serves every test. */
let random: () => number = Math.random;
const clock = createFakeClock();
let handled = 0;

const echoImpl = createEchoImpl();
const countingEcho: ServiceImpl<typeof EchoService> = {
  ...echoImpl,
  echo(req, ctx) {
    handled++;
    return echoImpl.echo(req, ctx);
  },
};
const orders: Partial<ServiceImpl<typeof OrderService>> = {
  getOrder: (req) => ({ order: { id: req.id } }),
};

const injector = createFaultInjector(undefined, { random: () => random() });
// Delays of the cancellation tests run on a fake clock, so no timer is left to guess about.
const fakeTimeInjector = createFaultInjector(undefined, { clock });

let server: MeshServer;
let fakeTimeServer: MeshServer;
let bound: BoundAddress;
let transport: MeshTransport;
let fakeTimeTransport: MeshTransport;

beforeAll(async () => {
  server = createMeshServer({
    routes: (r) => {
      r.service(EchoService, countingEcho);
      r.service(OrderService, orders);
    },
    interceptors: [injector.interceptor],
  });
  fakeTimeServer = createMeshServer({
    routes: (r) => r.service(EchoService, countingEcho),
    interceptors: [fakeTimeInjector.interceptor],
  });
  bound = await server.listen();
  const fakeBound = await fakeTimeServer.listen();
  transport = createMeshTransport({
    target: bound.address,
    // The server interceptor is under test: client retries and breakers would hide its answers.
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
  });
  fakeTimeTransport = createMeshTransport({
    target: fakeBound.address,
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
  });
});
afterAll(async () => {
  await transport.close();
  await fakeTimeTransport.close();
  await server.close({ graceMs: 0 });
  await fakeTimeServer.close({ graceMs: 0 });
});
beforeEach(() => {
  injector.clear();
  fakeTimeInjector.clear();
  random = Math.random;
  handled = 0;
});

const echo = () => createClient(EchoService, transport);
const settle = <T>(p: Promise<T>): Promise<T | ConnectError> =>
  p.catch((e: unknown) => ConnectError.from(e));

describe("fault injection aborts", () => {
  it("fails exactly the calls the seeded random picks", async () => {
    const calls = 120; // a multiple of the batch size
    const expected = Array.from({ length: calls }, seededRandom(42)).filter((r) => r < 0.3).length;
    random = seededRandom(42);
    injector.set({ methods: { [ECHO]: { abortPercent: 30 } } });
    const client = echo();
    const results: (unknown | ConnectError)[] = [];
    // Batches of 8: more concurrent calls trip Node's MaxListeners warning on
    // Connect's shared shutdown signal, which says nothing about this feature.
    for (let i = 0; i < calls; i += 8) {
      const batch = Array.from({ length: 8 }, () =>
        settle(client.echo({ payload: new Uint8Array([1]) })),
      );
      results.push(...(await Promise.all(batch)));
    }
    const errors = results.filter((r) => r instanceof ConnectError);
    expect(expected).toBeGreaterThan(20);
    expect(errors).toHaveLength(expected);
    for (const e of errors) {
      expect(e.code).toBe(Code.Unavailable);
      expect(e.rawMessage).toBe(`injected fault: UNAVAILABLE on ${ECHO}`);
      expect(e.metadata.get("x-mesh-fault")).toBe("abort");
    }
    expect(handled).toBe(calls - expected);
    expect(injector.stats()[ECHO]).toEqual({ delays: 0, aborts: expected });
  });

  it("gives several codes their own disjoint shares", async () => {
    random = sequence(0.05, 0.15, 0.25, 0.35, 0.5);
    injector.set({
      default: {
        abortPercent: 10,
        abortMessage: "chaos monkey",
        codes: [
          { code: Code.Internal, percent: 10 },
          { code: Code.ResourceExhausted, percent: 10 },
          { code: Code.Aborted, percent: 10 },
        ],
      },
    });
    const client = echo();
    const codes: Code[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await settle(client.echo({}));
      codes.push(r instanceof ConnectError ? r.code : (0 as Code));
      if (r instanceof ConnectError) expect(r.rawMessage).toBe("injected fault: chaos monkey");
    }
    expect(codes).toEqual([
      Code.Unavailable,
      Code.Internal,
      Code.ResourceExhausted,
      Code.Aborted,
      0,
    ]);
  });

  it("sends grpc-retry-pushback-ms with injected errors, readable by the client", async () => {
    injector.set({ methods: { "test.v1.EchoService": { abortPercent: 100, pushbackMs: 250 } } });
    const err = await settle(echo().echo({}));
    expect(err).toBeInstanceOf(ConnectError);
    const e = err as ConnectError;
    expect(e.metadata.get("grpc-retry-pushback-ms")).toBe("250");
    expect(parsePushback(e.metadata.get("grpc-retry-pushback-ms"))).toEqual({
      retry: true,
      delayMs: 250,
    });
    expect(e.metadata.get("x-mesh-fault")).toBe("abort");

    // Streams get it too, before any message.
    const stream = echo().echoServerStream({ repeat: 3 });
    const streamErr = await settle(
      (async () => {
        for await (const _ of stream) {
          throw new Error("no message expected");
        }
      })(),
    );
    expect((streamErr as ConnectError).code).toBe(Code.Unavailable);
    expect((streamErr as ConnectError).metadata.get("grpc-retry-pushback-ms")).toBe("250");
  });

  it("sends no pushback when the rule has none", async () => {
    injector.set({ default: { abortPercent: 100, abortCode: Code.Internal } });
    const e = (await settle(echo().echo({}))) as ConnectError;
    expect(e.code).toBe(Code.Internal);
    expect(e.metadata.get("grpc-retry-pushback-ms")).toBeNull();
  });
});

describe("fault injection precedence", () => {
  const config: FaultConfig = {
    default: { abortPercent: 100, abortCode: Code.Internal },
    methods: {
      [ECHO]: { abortPercent: 100, abortCode: Code.NotFound },
      "test.v1.EchoService": { abortPercent: 100, abortCode: Code.PermissionDenied },
    },
  };

  it("prefers the method's rule, then the service's, then the default", async () => {
    injector.set(config);
    const client = echo();
    expect(((await settle(client.echo({}))) as ConnectError).code).toBe(Code.NotFound);
    const streamed = await settle(
      (async () => {
        for await (const _ of client.echoServerStream({ repeat: 1 })) {
          // drain
        }
      })(),
    );
    expect((streamed as ConnectError).code).toBe(Code.PermissionDenied);
    const ordersClient = createClient(OrderService, transport);
    expect(((await settle(ordersClient.getOrder({ id: "o-1" }))) as ConnectError).code).toBe(
      Code.Internal,
    );
  });

  it("leaves gRPC health out of the default rule, but not out of an explicit key", async () => {
    injector.set({ default: { abortPercent: 100 } });
    const health = createClient(Health, transport);
    await expect(health.check({ service: "" })).resolves.toBeDefined();
    injector.update({ methods: { "grpc.health.v1.Health/Check": { abortPercent: 100 } } });
    await expect(health.check({ service: "" })).rejects.toMatchObject({ code: Code.Unavailable });
  });

  it("resolves rules as a pure function", () => {
    const valid = createFaultInjector(config).config();
    expect(ruleFor(valid, "test.v1.EchoService", "Echo")?.abortCode).toBe(Code.NotFound);
    expect(ruleFor(valid, "test.v1.EchoService", "EchoBidi")?.abortCode).toBe(
      Code.PermissionDenied,
    );
    expect(ruleFor(valid, "example.orders.v1.OrderService", "GetOrder")?.abortCode).toBe(
      Code.Internal,
    );
    expect(ruleFor(valid, "grpc.health.v1.Health", "Check")).toBeUndefined();
    expect(ruleFor({}, "test.v1.EchoService", "Echo")).toBeUndefined();
  });
});

describe("fault injection at run time", () => {
  it("applies set, update and clear from the next call on", async () => {
    const client = echo();
    await expect(client.echo({})).resolves.toBeDefined();
    injector.set({ methods: { [ECHO]: { abortPercent: 100 } } });
    await expect(client.echo({})).rejects.toMatchObject({ code: Code.Unavailable });
    injector.update({ methods: { [ECHO]: { abortPercent: 100, abortCode: Code.DataLoss } } });
    await expect(client.echo({})).rejects.toMatchObject({ code: Code.DataLoss });
    injector.update({ default: { abortPercent: 100, abortCode: Code.Aborted } });
    await expect(client.echo({})).rejects.toMatchObject({ code: Code.DataLoss });
    injector.update({ methods: { [ECHO]: null } });
    await expect(client.echo({})).rejects.toMatchObject({ code: Code.Aborted });
    injector.update({ default: null });
    expect(injector.config()).toEqual({});
    await expect(client.echo({})).resolves.toBeDefined();
    injector.set({ default: { abortPercent: 100 } });
    injector.clear();
    await expect(client.echo({})).resolves.toBeDefined();
  });

  it("keeps config snapshots frozen and keeps the old one when a set is invalid", () => {
    injector.set({ methods: { [ECHO]: { abortPercent: 5 } } });
    const before = injector.config();
    expect(Object.isFrozen(before)).toBe(true);
    expect(Object.isFrozen(before.methods?.[ECHO])).toBe(true);
    expect(() => injector.update({ methods: { [ECHO]: { abortPercent: 500 } } })).toThrow(
      RangeError,
    );
    expect(injector.config()).toBe(before);
  });

  it("snapshots the caller's config instead of sharing it", () => {
    const rule = { abortPercent: 5 };
    injector.set({ default: rule });
    rule.abortPercent = 100;
    expect(injector.config().default?.abortPercent).toBe(5);
  });
});

describe("fault injection delays", () => {
  it("holds the call for delayMs before the handler and marks the response", async () => {
    injector.set({ methods: { [ECHO]: { delayMs: 150 } } });
    let marker: string | null = null;
    const started = performance.now();
    await echo().echo({}, { onHeader: (h) => (marker = h.get("x-mesh-fault")) });
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(marker).toBe("delay");
    expect(injector.stats()[ECHO]?.delays).toBeGreaterThanOrEqual(1);
  });

  it("delays only delayPercent of calls, and adds jitter on top", () => {
    const rule = { delayMs: 100, delayJitterMs: 50, delayPercent: 50 };
    expect(decideFault(rule, sequence(0.4, 0.5), ECHO).delayMs).toBe(125);
    expect(decideFault(rule, sequence(0.6), ECHO).delayMs).toBeUndefined();
    expect(decideFault({ delayMs: 10 }, sequence(0.999), ECHO).delayMs).toBe(10);
    expect(decideFault({ delayMs: 10, delayPercent: 0 }, sequence(0), ECHO).delayMs).toBe(
      undefined,
    );
    // Delay first, then the error, each with its own draw.
    const both = decideFault({ delayMs: 10, abortPercent: 50 }, sequence(0.9, 0.1), ECHO);
    expect(both).toEqual({
      delayMs: 10,
      abort: { code: Code.Unavailable, message: `injected fault: UNAVAILABLE on ${ECHO}` },
    });
  });

  it("stops waiting when the call's deadline passes", async () => {
    fakeTimeInjector.set({ default: { delayMs: 60_000 } });
    const client = createClient(EchoService, fakeTimeTransport);
    const started = performance.now();
    const err = await settle(client.echo({}, { timeoutMs: 100 }));
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - started).toBeLessThan(5_000);
    await waitFor(() => clock.pendingTimers === 0);
    expect(handled).toBe(0);
  });

  it("stops waiting when the client cancels the call", async () => {
    fakeTimeInjector.set({ default: { delayMs: 60_000 } });
    const client = createClient(EchoService, fakeTimeTransport);
    const abort = new AbortController();
    const call = settle(client.echo({}, { signal: abort.signal }));
    await waitFor(() => clock.pendingTimers === 1);
    abort.abort();
    expect(((await call) as ConnectError).code).toBe(Code.Canceled);
    await waitFor(() => clock.pendingTimers === 0);
    expect(handled).toBe(0);
  });

  it("runs the handler once the delay is over", async () => {
    fakeTimeInjector.set({ default: { delayMs: 5_000 } });
    const client = createClient(EchoService, fakeTimeTransport);
    const call = client.echo({ payload: new Uint8Array([9]) });
    await waitFor(() => clock.pendingTimers === 1);
    expect(handled).toBe(0);
    clock.advance(5_000);
    expect([...(await call).payload]).toEqual([9]);
    expect(handled).toBe(1);
  });
});

describe("fault injection validation", () => {
  it.each([
    [{ default: { abortPercent: 101 } }, RangeError, "default.abortPercent 101 must be in 0..100"],
    [{ default: { abortPercent: -1 } }, RangeError, "-1"],
    [{ default: { delayPercent: Number.NaN } }, RangeError, "NaN"],
    [{ default: { delayMs: -5 } }, RangeError, "default.delayMs -5"],
    [{ default: { delayMs: Number.POSITIVE_INFINITY } }, RangeError, "Infinity"],
    [{ default: { delayJitterMs: -1 } }, RangeError, "delayJitterMs -1"],
    [{ default: { abortCode: 17 as Code } }, RangeError, "abortCode 17"],
    [{ default: { abortCode: 0 as Code } }, RangeError, "abortCode 0"],
    [{ default: { codes: [{ code: 99 as Code, percent: 5 }] } }, RangeError, "codes[0].code 99"],
    [{ default: { codes: [{ code: Code.Internal, percent: 150 }] } }, RangeError, "150"],
    [
      { default: { abortPercent: 60, codes: [{ code: Code.Internal, percent: 50 }] } },
      RangeError,
      "110%",
    ],
    [{ default: { pushbackMs: 1.5 } }, RangeError, "pushbackMs 1.5"],
    [{ default: { pushbackMs: -1 } }, RangeError, "pushbackMs -1"],
    [{ methods: { "/test.v1.EchoService/Echo": {} } }, RangeError, '"/test.v1.EchoService/Echo"'],
    [{ methods: { "": {} } }, RangeError, '""'],
    [{ methods: { [ECHO]: { abortPercent: 200 } } }, RangeError, `methods["${ECHO}"].abortPercent`],
    [{ default: { abortPercentage: 5 } as never }, TypeError, "abortPercentage"],
    [{ defaults: {} } as never, TypeError, "defaults"],
    [{ default: { abortMessage: 5 as never } }, TypeError, "abortMessage"],
  ])("rejects %j", (config, type, text) => {
    expect(() => injector.set(config as FaultConfig)).toThrow(type);
    expect(() => injector.set(config as FaultConfig)).toThrow(text);
    expect(() => createFaultInjector(config as FaultConfig)).toThrow(type);
  });

  it("accepts shares adding up to 100 and the edges of each range", () => {
    expect(() =>
      injector.set({
        default: {
          delayMs: 0,
          delayPercent: 0,
          abortPercent: 33.3,
          abortCode: Code.Unauthenticated,
          codes: [
            { code: Code.Canceled, percent: 33.3 },
            { code: Code.Internal, percent: 33.4 },
          ],
          pushbackMs: 0,
        },
        methods: { "pkg.Service": {}, "a.b.c.S/M_1": { abortPercent: 100 } },
      }),
    ).not.toThrow();
  });
});
