import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
  runOutsideCallScope,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

type Echo = ServiceImpl<typeof EchoService>;

describe("deadline and cancellation propagation through a handler", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) {
      await c();
    }
  });

  async function serve(impl: Partial<Echo>): Promise<string> {
    const server: MeshServer = createMeshServer({
      routes: (r) => r.service(EchoService, { ...createEchoImpl(), ...impl }),
    });
    const { address } = await server.listen();
    cleanups.push(() => server.close({ graceMs: 0 }));
    return address;
  }
  function transport(target: string): MeshTransport {
    const t = createMeshTransport({ target });
    cleanups.push(() => t.close());
    return t;
  }

  /** front serves Echo by calling `call` on a client of the backend. */
  async function front(
    backend: string,
    call: (
      c: ReturnType<typeof createClient<typeof EchoService>>,
      req: Parameters<Echo["echo"]>[0],
    ) => ReturnType<Echo["echo"]>,
  ) {
    const backendClient = createClient(EchoService, transport(backend));
    return serve({ echo: (req) => call(backendClient, req) });
  }

  it("a call made inside a handler inherits the remaining deadline", async () => {
    const backend = await serve({});
    const a = await front(backend, (c, req) => c.echo(req));
    const res = await createClient(EchoService, transport(a)).echo({}, { timeoutMs: 10_000 });
    // Generous: the hop may take a while on a busy host.
    expect(res.timeoutMs).toBeGreaterThan(5_000);
    expect(res.timeoutMs).toBeLessThan(10_000);
  });

  it("an explicit smaller timeout inside the handler wins over the inherited one", async () => {
    const backend = await serve({});
    const a = await front(backend, (c, req) => c.echo(req, { timeoutMs: 2_000 }));
    const res = await createClient(EchoService, transport(a)).echo({}, { timeoutMs: 20_000 });
    expect(res.timeoutMs).toBeGreaterThan(1_000);
    expect(res.timeoutMs).toBeLessThanOrEqual(2_000);
  });

  it("an explicit larger timeout inside the handler is cut to the inherited one", async () => {
    const backend = await serve({});
    const a = await front(backend, (c, req) => c.echo(req, { timeoutMs: 60_000 }));
    const res = await createClient(EchoService, transport(a)).echo({}, { timeoutMs: 500 });
    expect(res.timeoutMs).toBeLessThan(500);
  });

  it("the inherited deadline expires downstream with DEADLINE_EXCEEDED", async () => {
    let backendSaw: unknown;
    const backend = await serve({
      async echo(_req, ctx) {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        backendSaw = ctx.signal.reason;
        return {};
      },
    });
    const a = await front(backend, (c, req) => c.echo(req));
    const started = performance.now();
    const err = await createClient(EchoService, transport(a))
      .echo({}, { timeoutMs: 150 })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    // The backend never answers on its own: only the deadline ends the call.
    expect(performance.now() - started).toBeLessThan(5_000);
    await waitFor(() => backendSaw !== undefined);
  });

  it("cancelling the incoming call cancels the call the handler made", async () => {
    let backendCancelled!: () => void;
    const cancelled = new Promise<void>((resolve) => {
      backendCancelled = resolve;
    });
    let backendStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      backendStarted = resolve;
    });
    const backend = await serve({
      async echo(_req, ctx) {
        backendStarted();
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        backendCancelled();
        return {};
      },
    });
    const a = await front(backend, (c, req) => c.echo(req));
    const abort = new AbortController();
    const call = createClient(EchoService, transport(a)).echo({}, { signal: abort.signal });
    call.catch(() => {});
    await started;
    abort.abort();
    await expect(call).rejects.toMatchObject({ code: Code.Canceled });
    // Resolves only if the backend handler saw its signal abort.
    await cancelled;
  });

  it("runOutsideCallScope detaches a call from the incoming deadline", async () => {
    const backend = await serve({});
    const a = await front(backend, (c, req) => runOutsideCallScope(() => c.echo(req)));
    const res = await createClient(EchoService, transport(a)).echo({}, { timeoutMs: 1000 });
    expect(res.timeoutMs).toBe(0);
  });

  it("a streaming handler's downstream calls inherit the deadline after awaits", async () => {
    const backend = await serve({});
    const backendClient = createClient(EchoService, transport(backend));
    const a = await serve({
      async *echoServerStream(req) {
        for (let i = 0; i < req.repeat; i++) {
          await new Promise((r) => setTimeout(r, 5));
          const res = await backendClient.echo({});
          yield { index: Math.round(res.timeoutMs) };
        }
      },
    });
    const seen: number[] = [];
    for await (const m of createClient(EchoService, transport(a)).echoServerStream(
      { repeat: 3 },
      { timeoutMs: 2000 },
    )) {
      seen.push(m.index);
    }
    expect(seen).toHaveLength(3);
    for (const ms of seen) {
      expect(ms).toBeGreaterThan(1000);
      expect(ms).toBeLessThanOrEqual(2000);
    }
  });
});
