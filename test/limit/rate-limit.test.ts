import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
  type MeshTransportOptions,
  type RateLimitEvent,
  type RateLimitOptions,
} from "../../src/index.js";
import { parsePushback } from "../../src/retry/deadline-math.js";
import { Health } from "../../src/server/health-service.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

// Rates are tiny (one token per 100 s) so that no token comes back during a
// test however slow the machine is: counts are exact.
const SLOW_RATE = 0.01;

interface Harness {
  readonly server: MeshServer;
  readonly transport: MeshTransport;
  readonly echo: ReturnType<typeof createClient<typeof EchoService>>;
  readonly handled: Map<string, number>;
  readonly events: RateLimitEvent[];
}

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    await h.transport.close();
    await h.server.close({ graceMs: 0 });
  }
});

async function start(
  rateLimit: Omit<RateLimitOptions, "onEvent"> | undefined,
  client: Partial<MeshTransportOptions> = {},
): Promise<Harness> {
  const handled = new Map<string, number>();
  const events: RateLimitEvent[] = [];
  const bump = (name: string) => handled.set(name, (handled.get(name) ?? 0) + 1);
  const impl = createEchoImpl();
  const counted: ServiceImpl<typeof EchoService> = {
    ...impl,
    echo(req, ctx) {
      bump("Echo");
      return impl.echo(req, ctx);
    },
    echoServerStream(req, ctx) {
      bump("EchoServerStream");
      return impl.echoServerStream(req, ctx);
    },
  };
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, counted),
    logger: false,
    ...(rateLimit === undefined
      ? {}
      : { rateLimit: { ...rateLimit, onEvent: (e) => events.push(e) } }),
  });
  const bound = await server.listen();
  const transport = createMeshTransport({
    target: bound.address,
    logger: false,
    // The limits are under test: retries and breakers would hide their answers.
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
    ...client,
  });
  const h = { server, transport, echo: createClient(EchoService, transport), handled, events };
  open.push(h);
  return h;
}

const settle = <T>(p: Promise<T>): Promise<T | ConnectError> =>
  p.catch((e: unknown) => ConnectError.from(e));

async function calls(n: number, call: () => Promise<unknown>): Promise<(unknown | ConnectError)[]> {
  const out: (unknown | ConnectError)[] = [];
  // One after another: the order of admissions is then the order of calls.
  for (let i = 0; i < n; i++) out.push(await settle(call()));
  return out;
}

const refusals = (results: unknown[]) =>
  results.filter((r): r is ConnectError => r instanceof ConnectError);

describe("server rate limit", () => {
  it("per method: admits the burst, then RESOURCE_EXHAUSTED with pushback until a token, without the handler", async () => {
    const { echo, handled, events } = await start({
      limits: { "test.v1.EchoService/Echo": { ratePerSecond: SLOW_RATE, burst: 3 } },
    });
    const results = await calls(5, () => echo.echo({}));
    const refused = refusals(results);
    expect(refused).toHaveLength(2);
    expect(results.slice(0, 3).every((r) => !(r instanceof ConnectError))).toBe(true);
    for (const e of refused) {
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(e.rawMessage).toBe("rate limit of 0.01 calls/s reached for test.v1.EchoService/Echo");
      const pushback = parsePushback(e.metadata.get("grpc-retry-pushback-ms"));
      // The time until one token at 0.01/s: up to 100 s, and more than 90 s
      // unless this test took 10 s between two calls.
      expect(pushback?.retry).toBe(true);
      expect(pushback?.retry === true && pushback.delayMs).toBeGreaterThan(0);
      expect(pushback?.retry === true && pushback.delayMs).toBeLessThanOrEqual(100_000);
    }
    expect(handled.get("Echo")).toBe(3);
    expect(events.filter((e) => e.type === "rate-limited")).toHaveLength(2);
    expect(events[0]).toMatchObject({
      type: "rate-limited",
      method: "test.v1.EchoService/Echo",
      per: "method",
    });
    // A method not in the table is not limited.
    for (let i = 0; i < 5; i++) {
      for await (const _ of echo.echoServerStream({ repeat: 1 })) {
        // drain
      }
    }
    expect(handled.get("EchoServerStream")).toBe(5);
  });

  it("one rule for every method limits streams too and leaves health alone", async () => {
    const { echo, transport, handled } = await start({
      limits: { ratePerSecond: SLOW_RATE, burst: 2 },
    });
    const stream = async () => {
      for await (const _ of echo.echoServerStream({ repeat: 2 })) {
        // drain
      }
    };
    const results = await calls(3, stream);
    expect(refusals(results).map((e) => e.code)).toEqual([Code.ResourceExhausted]);
    expect(handled.get("EchoServerStream")).toBe(2);
    const health = createClient(Health, transport);
    for (let i = 0; i < 5; i++) {
      expect((await health.check({})).status).toBe(1);
    }
  });

  it("per principal: each caller has its own bucket; callers without one share a bucket", async () => {
    const { echo, handled, events } = await start({
      limits: { ratePerSecond: SLOW_RATE, burst: 2, per: "principal" },
      principal: (req) => req.header.get("x-tenant") ?? undefined,
    });
    const as = (tenant: string | undefined) => () =>
      echo.echo({}, tenant === undefined ? {} : { headers: { "x-tenant": tenant } });
    const a = await calls(3, as("a"));
    const b = await calls(3, as("b"));
    const anonymous = await calls(3, as(undefined));
    for (const results of [a, b, anonymous]) {
      expect(results.map((r) => (r instanceof ConnectError ? r.code : "ok"))).toEqual([
        "ok",
        "ok",
        Code.ResourceExhausted,
      ]);
    }
    const e = refusals(a)[0]!;
    expect(e.rawMessage).toBe(
      "rate limit of 0.01 calls/s per principal reached for test.v1.EchoService/Echo",
    );
    // The principal is not in the message or the events (it could be a key).
    expect(JSON.stringify(events)).not.toContain('"a"');
    expect(events.every((ev) => ev.type === "rate-limited" && ev.per === "principal")).toBe(true);
    expect(handled.get("Echo")).toBe(6);
  });

  it("refills at the rate: a refused caller that waits the pushback gets in", async () => {
    // 20/s, burst 1: a token every 50 ms. Waiting the pushback is enough
    // whatever the machine's speed (more time only adds tokens).
    const { echo, handled } = await start({ limits: { ratePerSecond: 20, burst: 1 } });
    for (let i = 0; i < 4; i++) {
      const r = await settle(echo.echo({}));
      if (r instanceof ConnectError) {
        expect(r.code).toBe(Code.ResourceExhausted);
        const p = parsePushback(r.metadata.get("grpc-retry-pushback-ms"));
        expect(p?.retry === true && p.delayMs).toBeLessThanOrEqual(50);
        // Node timers start from the event loop's cached time and may fire a
        // little early against the server's clock: wait a margin longer.
        await new Promise((res) => setTimeout(res, (p?.retry === true ? p.delayMs : 50) + 20));
        expect(await settle(echo.echo({}))).not.toBeInstanceOf(ConnectError);
      }
    }
    // Each round ended in exactly one admitted call.
    expect(handled.get("Echo")).toBe(4);
  });

  it("validates options when the server is built", () => {
    const routes = () => {};
    expect(() => createMeshServer({ routes, rateLimit: { limits: { ratePerSecond: 0 } } })).toThrow(
      /limits.ratePerSecond 0 must be a number > 0/,
    );
    expect(() =>
      createMeshServer({ routes, rateLimit: { limits: { "bad key": { ratePerSecond: 1 } } } }),
    ).toThrow(/limits key "bad key" must be/);
    expect(() =>
      createMeshServer({
        routes,
        rateLimit: { limits: { ratePerSecond: 1 }, failMode: "maybe" as "open" },
      }),
    ).toThrow(/failMode "maybe"/);
    expect(() =>
      createMeshServer({
        routes,
        rateLimit: { limits: { ratePerSecond: 1, per: "tenant" as "method" } },
      }),
    ).toThrow(/limits.per "tenant"/);
  });
});

describe("client rate limit", () => {
  it("fails fast with RESOURCE_EXHAUSTED and pushback, nothing sent", async () => {
    const { echo, handled } = await start(undefined, {
      rateLimit: { ratePerSecond: SLOW_RATE, burst: 2 },
    });
    const results = await calls(4, () => echo.echo({}));
    const refused = refusals(results);
    expect(refused).toHaveLength(2);
    for (const e of refused) {
      expect(e.code).toBe(Code.ResourceExhausted);
      expect(e.rawMessage).toMatch(
        /^client rate limit of 0.01 calls\/s reached for 127\.0\.0\.1:\d+: not sent$/,
      );
      expect(parsePushback(e.metadata.get("grpc-retry-pushback-ms"))?.retry).toBe(true);
    }
    expect(handled.get("Echo")).toBe(2);
  });

  it("per method keeps one bucket per method; options are validated", async () => {
    const { echo, handled } = await start(undefined, {
      rateLimit: { ratePerSecond: SLOW_RATE, burst: 1, per: "method" },
    });
    expect(refusals(await calls(2, () => echo.echo({})))).toHaveLength(1);
    for await (const _ of echo.echoServerStream({ repeat: 1 })) {
      // drain
    }
    expect(handled.get("Echo")).toBe(1);
    expect(handled.get("EchoServerStream")).toBe(1);
    expect(() =>
      createMeshTransport({ target: "127.0.0.1:1", rateLimit: { ratePerSecond: -2 } }),
    ).toThrow(/rateLimit.ratePerSecond -2 must be a number > 0/);
  });
});
