import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BoundAddress,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  meshCallKey,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

describe("mesh transport", () => {
  let server: MeshServer;
  let bound: BoundAddress;
  let served = 0;
  beforeAll(async () => {
    const impl = createEchoImpl();
    server = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...impl,
          echo(req, ctx) {
            served++;
            return impl.echo(req, ctx);
          },
        }),
    });
    bound = await server.listen();
  });
  afterAll(() => server.close({ graceMs: 0 }));

  it("rewrites grpc-timeout to the time left when the attempt starts, after slow interceptors", async () => {
    const slow: Interceptor = (next) => async (req) => {
      await new Promise((r) => setTimeout(r, 300));
      return next(req);
    };
    const transport = createMeshTransport({ target: bound.address, interceptors: [slow] });
    const res = await createClient(EchoService, transport).echo({}, { timeoutMs: 10_000 });
    // Stock Connect would still announce 10000 ms here; the lower bound is
    // generous for a busy host.
    expect(res.timeoutMs).toBeLessThanOrEqual(10_000 - 290);
    expect(res.timeoutMs).toBeGreaterThan(5_000);
    await transport.close();
  });

  it("fails with DEADLINE_EXCEEDED and sends nothing when the deadline passes before the attempt", async () => {
    const before = served;
    const late: Interceptor = (next) => async (req) => {
      await new Promise((r) => setTimeout(r, 100));
      return next(req);
    };
    const transport = createMeshTransport({ target: bound.address, interceptors: [late] });
    const err = await createClient(EchoService, transport)
      .echo({}, { timeoutMs: 50 })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect(served).toBe(before);
    await transport.close();
  });

  it("applies defaultTimeoutMs when the call sets none", async () => {
    const transport = createMeshTransport({ target: bound.address, defaultTimeoutMs: 700 });
    const res = await createClient(EchoService, transport).echo({});
    expect(res.timeoutMs).toBeGreaterThan(500);
    expect(res.timeoutMs).toBeLessThanOrEqual(700);
    await transport.close();
  });

  it("lets user interceptors read the mesh call state (target, deadline, endpoint)", async () => {
    let seen: { target: string; hasDeadline: boolean; endpoint: string | undefined } | undefined;
    const spy: Interceptor = (next) => async (req) => {
      const res = await next(req);
      const call = req.contextValues.get(meshCallKey);
      seen = call && {
        target: call.target,
        hasDeadline: call.deadlineAt !== undefined,
        endpoint: call.endpoint,
      };
      return res;
    };
    const transport = createMeshTransport({ target: bound.address, interceptors: [spy] });
    await createClient(EchoService, transport).echo({}, { timeoutMs: 1000 });
    expect(seen).toEqual({ target: bound.address, hasDeadline: true, endpoint: bound.address });
    await transport.close();
  });

  it("fails calls after close() with UNAVAILABLE naming the target", async () => {
    const transport = createMeshTransport({ target: bound.address });
    await createClient(EchoService, transport).echo({});
    await transport.close();
    await expect(createClient(EchoService, transport).echo({})).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining(bound.address),
    });
  });

  it("close() cancels every call in flight on it, and only those, naming the target", async () => {
    const transport = createMeshTransport({ target: bound.address, retry: false });
    const other = createMeshTransport({ target: bound.address, retry: false });
    const client = createClient(EchoService, transport);
    const before = served;
    // Five calls without a signal or deadline of their own (they watch only
    // the transport's close), one with its own signal and one with a deadline.
    const own = new AbortController();
    const calls = [
      ...Array.from({ length: 5 }, () => client.echo({ delayMs: 60_000 })),
      client.echo({ delayMs: 60_000 }, { signal: own.signal }),
      client.echo({ delayMs: 60_000 }, { timeoutMs: 120_000 }),
    ].map((p) =>
      p.then(
        () => null,
        (e: unknown) => ConnectError.from(e),
      ),
    );
    const survivor = createClient(EchoService, other).echo({ delayMs: 200 });
    await expect.poll(() => served - before, { timeout: 10_000 }).toBe(8);
    await transport.close();
    const errors = await Promise.all(calls);
    for (const e of errors) {
      expect(e?.code).toBe(Code.Canceled);
      expect(e?.rawMessage).toContain(bound.address);
    }
    await expect(survivor).resolves.toBeDefined();
    await other.close();
  });

  it("answers UNAVAILABLE when nothing listens at the target", async () => {
    const transport = createMeshTransport({ target: "127.0.0.1:1" });
    await expect(
      createClient(EchoService, transport).echo({}, { timeoutMs: 2000 }),
    ).rejects.toMatchObject({
      code: Code.Unavailable,
    });
    await transport.close();
  });

  it.each([
    [{ target: "" }, /target ""/],
    [{ target: "localhost" }, /"localhost" is not host:port/],
    [{ target: "127.0.0.1:70000" }, /70000/],
    [{ target: "127.0.0.1:0" }, /127\.0\.0\.1:0/],
    [{ target: "127.0.0.1:5000", defaultTimeoutMs: 0 }, /defaultTimeoutMs 0/],
  ])("validates options when built: %j", (options, message) => {
    expect(() => createMeshTransport(options)).toThrow(message);
  });
});
