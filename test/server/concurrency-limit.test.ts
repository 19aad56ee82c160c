import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import {
  type ConcurrencyLimitOptions,
  createConcurrencyLimit,
} from "../../src/limit/concurrency-limit.js";
import { parsePushback } from "../../src/retry/deadline-math.js";
import { Health } from "../../src/server/health-service.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

const ECHO = "test.v1.EchoService/Echo";
const SERVER_STREAM = "test.v1.EchoService/EchoServerStream";
const BIDI = "test.v1.EchoService/EchoBidi";

interface Harness {
  readonly server: MeshServer;
  readonly transport: MeshTransport;
  readonly echo: ReturnType<typeof createClient<typeof EchoService>>;
  readonly limit: ReturnType<typeof createConcurrencyLimit>;
  /** handled counts handler starts by method name. */
  readonly handled: Map<string, number>;
}

let open: Harness | undefined;
afterEach(async () => {
  await open?.transport.close();
  await open?.server.close({ graceMs: 0 });
  open = undefined;
});

async function start(options: ConcurrencyLimitOptions): Promise<Harness> {
  const limit = createConcurrencyLimit(options);
  const handled = new Map<string, number>();
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
    echoBidi(reqs, ctx) {
      bump("EchoBidi");
      return impl.echoBidi(reqs, ctx);
    },
  };
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, counted),
    interceptors: [limit.interceptor],
  });
  const bound = await server.listen();
  const transport = createMeshTransport({
    target: bound.address,
    // The server interceptor is under test: client retries and breakers would hide its answers.
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
  });
  open = { server, transport, echo: createClient(EchoService, transport), limit, handled };
  return open;
}

const settle = <T>(p: Promise<T>): Promise<T | ConnectError> =>
  p.catch((e: unknown) => ConnectError.from(e));

describe("concurrency limit on unary calls", () => {
  it("answers the N+1st concurrent call with RESOURCE_EXHAUSTED and pushback, without its handler", async () => {
    const { echo, limit, handled } = await start({ maxInFlight: 3 });
    const results = await Promise.all(
      Array.from({ length: 4 }, () => settle(echo.echo({ delayMs: 300 }))),
    );
    const errors = results.filter((r) => r instanceof ConnectError);
    expect(errors).toHaveLength(1);
    const err = errors[0]!;
    expect(err.code).toBe(Code.ResourceExhausted);
    expect(err.rawMessage).toBe(`concurrency limit of 3 calls in flight reached for ${ECHO}`);
    expect(err.metadata.get("grpc-retry-pushback-ms")).toBe("50");
    expect(parsePushback(err.metadata.get("grpc-retry-pushback-ms"))).toEqual({
      retry: true,
      delayMs: 50,
    });
    expect(handled.get("Echo")).toBe(3);
    expect(limit.inFlight(ECHO)).toBe(0);
  });

  it("rejects at once while the slots are taken, and lets calls pass once they are free", async () => {
    const { echo, limit, handled } = await start({ maxInFlight: 2, pushbackMs: 125 });
    const slow = [echo.echo({ delayMs: 3_000 }), echo.echo({ delayMs: 3_000 })];
    await waitFor(() => limit.inFlight(ECHO) === 2);
    const err = await settle(echo.echo({}));
    // Refused while both slots were still taken: it did not wait for one.
    expect(limit.inFlight(ECHO)).toBe(2);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).metadata.get("grpc-retry-pushback-ms")).toBe("125");
    await Promise.all(slow);
    expect(limit.inFlight(ECHO)).toBe(0);
    await expect(echo.echo({})).resolves.toBeDefined();
    await expect(Promise.all([echo.echo({}), echo.echo({})])).resolves.toHaveLength(2);
    expect(handled.get("Echo")).toBe(5);
  });

  it("frees the slot of a failed call", async () => {
    const { echo, limit } = await start({ maxInFlight: 1 });
    await expect(echo.echo({ failCode: Code.Internal })).rejects.toMatchObject({
      code: Code.Internal,
    });
    expect(limit.inFlight(ECHO)).toBe(0);
    await expect(echo.echo({})).resolves.toBeDefined();
  });

  it("frees the slot when the call times out, even if the handler ignores it", async () => {
    const { echo, limit } = await start({ maxInFlight: 1 });
    const err = await settle(echo.echo({ delayMs: 2_000, ignoreCancel: true }, { timeoutMs: 80 }));
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    await waitFor(() => limit.inFlight(ECHO) === 0);
    await expect(echo.echo({})).resolves.toBeDefined();
  });
});

describe("concurrency limit on streams", () => {
  it("holds a server stream's slot until the stream ends", async () => {
    const { echo, limit, handled } = await start({ maxInFlight: 1 });
    const it = echo.echoServerStream({ repeat: 3, intervalMs: 50 })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    expect(limit.inFlight(SERVER_STREAM)).toBe(1);
    const err = await settle(
      (async () => {
        for await (const _ of echo.echoServerStream({ repeat: 1 })) {
          // drain
        }
      })(),
    );
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((err as ConnectError).rawMessage).toContain(SERVER_STREAM);
    expect((err as ConnectError).metadata.get("grpc-retry-pushback-ms")).toBe("50");
    // Other methods have slots of their own.
    await expect(echo.echo({})).resolves.toBeDefined();
    while (!(await it.next()).done) {
      // drain
    }
    await waitFor(() => limit.inFlight(SERVER_STREAM) === 0);
    let n = 0;
    for await (const _ of echo.echoServerStream({ repeat: 2 })) n++;
    expect(n).toBe(2);
    expect(handled.get("EchoServerStream")).toBe(2);
  });

  it("frees a bidi stream's slot when the client cancels it", async () => {
    const { echo, limit } = await start({ maxInFlight: 1 });
    const abort = new AbortController();
    async function* requests() {
      yield { payload: new Uint8Array([1]) };
      await new Promise((r) => setTimeout(r, 10_000));
    }
    const it = echo.echoBidi(requests(), { signal: abort.signal })[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    expect(limit.inFlight(BIDI)).toBe(1);
    abort.abort();
    await settle(it.next());
    await waitFor(() => limit.inFlight(BIDI) === 0);
    const again = echo.echoBidi(
      (async function* () {
        yield { payload: new Uint8Array([2]) };
      })(),
    );
    const got: number[] = [];
    for await (const res of again) got.push(...res.payload);
    expect(got).toEqual([2]);
  });

  it("frees the slot of a stream that fails after its messages", async () => {
    const { echo, limit } = await start({ maxInFlight: 1 });
    const err = await settle(
      (async () => {
        for await (const _ of echo.echoServerStream({ repeat: 2, failCode: Code.Aborted })) {
          // drain
        }
      })(),
    );
    expect((err as ConnectError).code).toBe(Code.Aborted);
    await waitFor(() => limit.inFlight(SERVER_STREAM) === 0);
  });
});

describe("concurrency limit tables", () => {
  it("prefers a method's own limit to its service's and leaves others unlimited", async () => {
    const { echo, limit, transport } = await start({
      maxInFlight: { [ECHO]: 1, "test.v1.EchoService": 2 },
    });
    const echoCalls = [echo.echo({ delayMs: 300 }), settle(echo.echo({ delayMs: 300 }))];
    const streams = [0, 1, 2].map(() =>
      settle(
        (async () => {
          for await (const _ of echo.echoServerStream({ repeat: 1, intervalMs: 300 })) {
            // drain
          }
        })(),
      ),
    );
    const [, second] = await Promise.all(echoCalls);
    expect((second as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((second as ConnectError).rawMessage).toContain("limit of 1 ");
    const streamErrors = (await Promise.all(streams)).filter((r) => r instanceof ConnectError);
    expect(streamErrors).toHaveLength(1);
    expect(streamErrors[0]?.rawMessage).toContain("limit of 2 ");
    expect(limit.inFlight(ECHO)).toBe(0);
    // Health is not limited by the number form or an unrelated table.
    await expect(createClient(Health, transport).check({})).resolves.toBeDefined();
  });

  it("never limits gRPC health under the number form", async () => {
    const { transport } = await start({ maxInFlight: 1 });
    const health = createClient(Health, transport);
    const watches = [0, 1].map(() => {
      const abort = new AbortController();
      const it = health.watch({}, { signal: abort.signal })[Symbol.asyncIterator]();
      return { abort, first: it.next() };
    });
    for (const w of watches) {
      expect((await w.first).done).toBe(false);
      w.abort.abort();
    }
  });
});

describe("concurrency limit options", () => {
  it.each([
    [{ maxInFlight: 0 }, RangeError, "maxInFlight 0 must be an integer >= 1"],
    [{ maxInFlight: -1 }, RangeError, "-1"],
    [{ maxInFlight: 1.5 }, RangeError, "1.5"],
    [{ maxInFlight: Number.NaN }, RangeError, "NaN"],
    [{ maxInFlight: Number.POSITIVE_INFINITY }, RangeError, "Infinity"],
    [{ maxInFlight: { [ECHO]: 0 } }, RangeError, `maxInFlight["${ECHO}"] 0`],
    [
      { maxInFlight: { "/test.v1.EchoService/Echo": 1 } },
      RangeError,
      '"/test.v1.EchoService/Echo"',
    ],
    [{ maxInFlight: { "a/b/c": 1 } }, RangeError, '"a/b/c"'],
    [{ maxInFlight: "10" as never }, TypeError, "maxInFlight 10"],
    [{} as never, TypeError, "maxInFlight undefined"],
    [{ maxInFlight: 1, pushbackMs: -1 }, RangeError, "pushbackMs -1"],
    [{ maxInFlight: 1, pushbackMs: 2.5 }, RangeError, "pushbackMs 2.5"],
    [{ maxInFlight: 1, criticalQueueMs: -1 }, RangeError, "criticalQueueMs -1"],
    [{ maxInFlight: 1, criticalQueueMs: 0.5 }, RangeError, "criticalQueueMs 0.5"],
    [{ maxInFlight: 1, adaptive: "gradient2" }, TypeError, "not both"],
    [{ adaptive: "cubic" as never }, RangeError, 'adaptive.algorithm "cubic"'],
    [{ adaptive: { minLimit: 0 } }, RangeError, "gradient2: minLimit 0"],
    [{ adaptive: "vegas", criticality: { sheddable: 2 } }, RangeError, "criticality.sheddable 2"],
    [{ adaptive: "vegas", onEvent: 1 as never }, TypeError, "onEvent must be a function"],
  ])("rejects %j at construction", (options, type, text) => {
    expect(() => createConcurrencyLimit(options as ConcurrencyLimitOptions)).toThrow(type);
    expect(() => createConcurrencyLimit(options as ConcurrencyLimitOptions)).toThrow(text);
  });

  it("accepts a table, a pushback of 0, and undefined pushback as the default", () => {
    expect(() =>
      createConcurrencyLimit({ maxInFlight: { "pkg.Service": 1, [ECHO]: 5 }, pushbackMs: 0 }),
    ).not.toThrow();
    expect(() => createConcurrencyLimit({ maxInFlight: 1, pushbackMs: undefined })).not.toThrow();
    expect(createConcurrencyLimit({ maxInFlight: 1 }).inFlight(ECHO)).toBe(0);
  });
});
