import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { createClientAttemptInterceptor } from "../../src/observability/client-attempt-interceptor.js";
import { createClientObserveInterceptor } from "../../src/observability/client-observe-interceptor.js";
import { loggerKey, traceContextKey } from "../../src/observability/context-keys.js";
import { currentLogger, currentTraceContext } from "../../src/observability/current-call.js";
import { createEventLogger } from "../../src/observability/event-logger.js";
import { levelForCode } from "../../src/observability/grpc-fields.js";
import { createServerObserveInterceptor } from "../../src/observability/server-observe-interceptor.js";
import { formatTraceparent } from "../../src/observability/trace-context.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { createEchoGrpcClient, type EchoGrpcClient, grpcUnary } from "../support/grpc-js-echo.js";
import { captureLogs, type LogLine } from "./log-capture.js";

const PINO = { debug: 20, info: 30, warn: 40, error: 50 } as const;

describe("logging", () => {
  const logs = captureLogs();
  const closers: Array<() => Promise<void>> = [];
  const grpcClients: EchoGrpcClient[] = [];
  const observe = () => createServerObserveInterceptor({ logger: logs.logger });
  const clientInterceptors = (): Interceptor[] => [
    createClientObserveInterceptor({ logger: logs.logger }),
    createClientAttemptInterceptor({ logger: logs.logger }),
  ];
  const tracestateSeenByB: Array<string | null> = [];
  let a: string;
  let b: string;
  let c: string;

  async function serve(
    impl: Partial<ReturnType<typeof createEchoImpl>>,
    interceptors: Interceptor[] = [observe()],
  ): Promise<string> {
    const server: MeshServer = createMeshServer({
      routes: (r) => r.service(EchoService, { ...createEchoImpl(), ...impl }),
      interceptors,
    });
    const { address } = await server.listen();
    closers.push(() => server.close({ graceMs: 0 }));
    return address;
  }
  function transport(target: string): MeshTransport {
    const t = createMeshTransport({ target, interceptors: clientInterceptors() });
    closers.push(() => t.close());
    return t;
  }

  beforeAll(async () => {
    // C: the last hop, a mesh server.
    const plainC = createEchoImpl("C");
    c = await serve({
      echo: (req, ctx) => {
        currentLogger().info("in C");
        return plainC.echo(req, ctx);
      },
    });
    // B calls C with a grpc-js client, passing its own span as the parent.
    const toC = createEchoGrpcClient(c);
    grpcClients.push(toC);
    b = await serve({
      async echo(req, ctx) {
        tracestateSeenByB.push(ctx.requestHeader.get("tracestate"));
        ctx.values.get(loggerKey)?.info("in B");
        const span = currentTraceContext();
        const md = new grpc.Metadata();
        if (span !== undefined) md.set("traceparent", formatTraceparent(span));
        const out = await grpcUnary(
          toC,
          { payload: req.payload },
          { metadata: md, timeoutMs: 2000 },
        );
        if (out.error !== undefined) throw out.error;
        return { payload: req.payload, servedBy: `B>${out.response?.servedBy}` };
      },
    });
    // A calls B with an observed mesh client.
    const toB = createClient(EchoService, transport(b));
    a = await serve({
      async echo(req) {
        currentLogger().info("in A");
        const res = await toB.echo({ payload: req.payload });
        return { payload: req.payload, servedBy: `A>${res.servedBy}` };
      },
    });
  });
  afterAll(async () => {
    for (const g of grpcClients) g.close();
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterEach(() => {
    logs.raw.length = 0;
    tracestateSeenByB.length = 0;
  });

  function bySpan(lines: LogLine[]): Map<string, LogLine> {
    return new Map(
      lines
        .filter((l) => l.msg !== "in A" && l.msg !== "in B" && l.msg !== "in C")
        .map((l) => [l.span_id as string, l]),
    );
  }

  it("client → A → B → C: one trace; parent and child span ids form the chain", async () => {
    const client = createClient(EchoService, transport(a));
    const res = await client.echo({ payload: new Uint8Array([1]) }, { timeoutMs: 3000 });
    expect(res.servedBy).toBe("A>B>C");
    const lines = logs.lines();
    const traceIds = new Set(lines.map((l) => l.trace_id));
    expect(traceIds.size).toBe(1);
    expect([...traceIds][0]).toMatch(/^[0-9a-f]{32}$/);

    const servers = logs.finished("server");
    const clients = logs.finished("client");
    const attempts = lines.filter((l) => l.msg === "finished attempt");
    expect(servers).toHaveLength(3);
    expect(clients).toHaveLength(2);
    expect(attempts).toHaveLength(2);
    const spans = bySpan(lines);
    // Walk up from C's server span: C ← B ← attempt ← call (A's client) ← A ← attempt ← call (root).
    const chain: string[] = [];
    let line = servers.find((l) => l.span_id === lines.find((x) => x.msg === "in C")?.span_id);
    while (line !== undefined) {
      chain.push(`${line.msg}/${line["grpc.component"]}`);
      line =
        line.parent_span_id === undefined ? undefined : spans.get(line.parent_span_id as string);
    }
    expect(chain).toEqual([
      "finished call/server", // C
      "finished call/server", // B (the grpc-js hop sent B's own span)
      "finished attempt/client", // A's attempt to B
      "finished call/client", // A's logical call to B
      "finished call/server", // A
      "finished attempt/client", // the test client's attempt
      "finished call/client", // the test client's call: the root
    ]);
    // Lines a handler writes carry its server span.
    for (const name of ["in A", "in B", "in C"]) {
      const handlerLine = lines.find((l) => l.msg === name);
      expect(servers.map((s) => s.span_id)).toContain(handlerLine?.span_id);
      expect(handlerLine).toMatchObject({ "grpc.component": "server", "grpc.method": "Echo" });
    }
  });

  it("a server call line has go-grpc-middleware's fields", async () => {
    const client = createClient(EchoService, transport(c));
    await client.echo({}, { timeoutMs: 1500 });
    const [server] = logs.finished("server");
    expect(server).toMatchObject({
      level: PINO.info,
      msg: "finished call",
      "grpc.component": "server",
      "grpc.service": "test.v1.EchoService",
      "grpc.method": "Echo",
      "grpc.method_type": "unary",
      "grpc.code": "OK",
      trace_flags: "01",
    });
    expect(server?.["grpc.time_ms"]).toBeTypeOf("number");
    expect(server?.["peer.address"]).toMatch(/^127\.0\.0\.1:\d+$/);
    const deadline = Date.parse(server?.["grpc.request.deadline"] as string);
    const start = Date.parse(server?.["grpc.start_time"] as string);
    expect(deadline - start).toBeGreaterThan(1000);
    expect(deadline - start).toBeLessThanOrEqual(1500);
    const [clientLine] = logs.finished("client");
    expect(clientLine).toMatchObject({
      "grpc.component": "client",
      "grpc.code": "OK",
      "grpc.attempts": 1,
      endpoint: c,
      target: c,
    });
    expect(server?.["peer.address"]).not.toBe(c);
  });

  it("a grpc-js client sending traceparent and tracestate is continued", async () => {
    const traceId = "1234567890abcdef1234567890abcdef";
    const spanId = "1122334455667788";
    const md = new grpc.Metadata();
    md.set("traceparent", `00-${traceId}-${spanId}-01`);
    md.set("tracestate", "vendor=opaque");
    const g = createEchoGrpcClient(a);
    grpcClients.push(g);
    const out = await grpcUnary(g, {}, { metadata: md, timeoutMs: 3000 });
    expect(out.error).toBeUndefined();
    const servers = logs.finished("server");
    expect(servers).toHaveLength(3);
    for (const s of servers) expect(s.trace_id).toBe(traceId);
    const first = servers.find((s) => s.parent_span_id === spanId);
    expect(first).toBeDefined();
    expect(tracestateSeenByB).toEqual(["vendor=opaque"]);
  });

  it.each([
    [Code.NotFound, "NotFound", PINO.info],
    [Code.InvalidArgument, "InvalidArgument", PINO.info],
    [Code.Unauthenticated, "Unauthenticated", PINO.info],
    [Code.PermissionDenied, "PermissionDenied", PINO.warn],
    [Code.ResourceExhausted, "ResourceExhausted", PINO.warn],
    [Code.FailedPrecondition, "FailedPrecondition", PINO.warn],
    [Code.Internal, "Internal", PINO.error],
    [Code.Unimplemented, "Unimplemented", PINO.error],
    [Code.DataLoss, "DataLoss", PINO.error],
  ])("a call failing with %s is logged as %s at level %i", async (code, name, level) => {
    const client = createClient(EchoService, transport(c));
    await expect(client.echo({ failCode: code, failMessage: "boom" })).rejects.toThrow();
    const [server] = logs.finished("server");
    expect(server).toMatchObject({ "grpc.code": name, level, "grpc.error": "boom" });
    expect(logs.finished("client")[0]).toMatchObject({ "grpc.code": name, level });
  });

  it("maps every code to go-grpc-middleware's level", () => {
    expect(levelForCode(0)).toBe("info");
    expect([Code.Canceled, Code.AlreadyExists].map(levelForCode)).toEqual(["info", "info"]);
    expect(
      [Code.DeadlineExceeded, Code.Aborted, Code.OutOfRange, Code.Unavailable].map(levelForCode),
    ).toEqual(["warn", "warn", "warn", "warn"]);
    expect(levelForCode(Code.Unknown)).toBe("error");
  });

  it("a deadline the handler misses is logged as DeadlineExceeded at warn", async () => {
    const client = createClient(EchoService, transport(c));
    await expect(client.echo({ delayMs: 500 }, { timeoutMs: 50 })).rejects.toThrow();
    await expect.poll(() => logs.finished("server").length).toBe(1);
    expect(logs.finished("server")[0]).toMatchObject({
      "grpc.code": "DeadlineExceeded",
      level: PINO.warn,
    });
  });

  it("streams are logged when the response stream ends", async () => {
    const client = createClient(EchoService, transport(c));
    const seen: number[] = [];
    for await (const m of client.echoServerStream({ repeat: 3, intervalMs: 40 })) {
      seen.push(m.index);
      if (m.index === 0) {
        // Nothing is logged before the stream ends.
        expect(logs.finished("server")).toHaveLength(0);
      }
    }
    expect(seen).toEqual([0, 1, 2]);
    await expect.poll(() => logs.finished("server").length).toBe(1);
    expect(logs.finished("server")[0]).toMatchObject({
      "grpc.method": "EchoServerStream",
      "grpc.method_type": "server_stream",
      "grpc.code": "OK",
    });
    expect(logs.finished("client")[0]).toMatchObject({
      "grpc.method_type": "server_stream",
      "grpc.code": "OK",
    });

    logs.raw.length = 0;
    const failing = client.echoServerStream({ repeat: 1, failCode: Code.Aborted });
    await expect(async () => {
      for await (const _ of failing) {
        // drain
      }
    }).rejects.toThrow(ConnectError);
    await expect.poll(() => logs.finished("server").length).toBe(1);
    expect(logs.finished("server")[0]).toMatchObject({ "grpc.code": "Aborted", level: PINO.warn });
  });

  it("each attempt of a retried call is its own span under the call's span", async () => {
    let calls = 0;
    const flaky = await serve({
      echo: () => {
        calls++;
        if (calls === 1) throw new ConnectError("try again", Code.Unavailable);
        return {};
      },
    });
    // A minimal retry loop standing in for the mesh's, between observe and attempt.
    const retryOnce: Interceptor = (next) => async (req) => {
      try {
        return await next({ ...req, header: new Headers(req.header) });
      } catch {
        return next({ ...req, header: new Headers(req.header) });
      }
    };
    const t = createMeshTransport({
      target: flaky,
      interceptors: [
        createClientObserveInterceptor({ logger: logs.logger }),
        retryOnce,
        createClientAttemptInterceptor({ logger: logs.logger }),
      ],
    });
    closers.push(() => t.close());
    await createClient(EchoService, t).echo({});
    const [call] = logs.finished("client");
    const attempts = logs.lines().filter((l) => l.msg === "finished attempt");
    const servers = logs.finished("server");
    expect(call).toMatchObject({ "grpc.code": "OK", "grpc.attempts": 2 });
    expect(attempts.map((a) => [a.attempt, a["grpc.code"], a.parent_span_id, a.level])).toEqual([
      [1, "Unavailable", call?.span_id, PINO.debug],
      [2, "OK", call?.span_id, PINO.debug],
    ]);
    expect(attempts[0]?.span_id).not.toBe(attempts[1]?.span_id);
    expect(servers.map((s) => [s.parent_span_id, s["grpc.code"]])).toEqual([
      [attempts[0]?.span_id, "Unavailable"],
      [attempts[1]?.span_id, "OK"],
    ]);
  });

  it("a replayed response is marked idempotency.replayed", async () => {
    const markReplayed: Interceptor = (next) => async (req) => {
      const res = await next(req);
      res.header.set("idempotency-replayed", "true");
      return res;
    };
    const replaying = await serve({}, [observe(), markReplayed]);
    await createClient(EchoService, transport(replaying)).echo({});
    expect(logs.finished("server")[0]).toMatchObject({ "idempotency.replayed": true });
    expect(logs.finished("client")[0]).toMatchObject({ "idempotency.replayed": true });
  });

  it("handlers get the call's logger and span through ctx.values", async () => {
    let fromValues: unknown;
    const address = await serve({
      echo: (_req, ctx) => {
        fromValues = ctx.values.get(traceContextKey);
        return {};
      },
    });
    await createClient(EchoService, transport(address)).echo({});
    expect(fromValues).toMatchObject({ spanId: logs.finished("server")[0]?.span_id });
  });

  it("currentLogger outside a call is the root logger", () => {
    expect(currentLogger()).toBeDefined();
    expect(currentTraceContext()).toBeUndefined();
  });

  it("attempt lines are debug: an info logger writes none", async () => {
    const info = captureLogs("info");
    const t = createMeshTransport({
      target: c,
      interceptors: [createClientAttemptInterceptor({ logger: info.logger })],
    });
    closers.push(() => t.close());
    await createClient(EchoService, t).echo({});
    expect(info.raw).toHaveLength(0);
    expect(logs.lines().filter((l) => l.msg === "finished attempt")).toHaveLength(0);
  });

  it("rejects a logger that is not pino", () => {
    expect(() => createServerObserveInterceptor({ logger: {} as never })).toThrow(TypeError);
    expect(() => createClientObserveInterceptor({ logger: console as never })).toThrow(TypeError);
  });
});

describe("event logger", () => {
  it("maps mesh events to lines at their levels", () => {
    const logs = captureLogs();
    const events = createEventLogger(logs.logger);
    events.onEvent({
      source: "balancer",
      type: "endpoints",
      target: "mesh:///orders",
      added: ["10.0.0.1:50051"],
      removed: [],
      size: 1,
    });
    events.onEvent({
      source: "outlier",
      target: "mesh:///orders",
      type: "ejected",
      address: "10.0.0.1:50051",
      reason: "consecutive-failures",
      at: 1,
      ejectionMs: 30_000,
      until: 30_001,
      ejectionCount: 1,
    });
    events.onEvent({ source: "outlier", target: "t", type: "restored", address: "a:1", at: 2 });
    events.onEvent({
      source: "resolver",
      type: "error",
      target: "dns:///x",
      error: new Error("nxdomain"),
    });
    events.onEvent({
      type: "breaker",
      key: "t test.v1.EchoService/Echo",
      from: "closed",
      to: "open",
      reason: "failure-rate",
      at: 3,
    });
    events.onEvent({
      type: "registered",
      registration: {
        service: "orders",
        instanceId: "i-1",
        address: "10.0.0.1:50051",
        metadata: {},
      },
    });
    events.onEvent({
      type: "lease-lost",
      registration: {
        service: "orders",
        instanceId: "i-1",
        address: "10.0.0.1:50051",
        metadata: {},
      },
    });
    events.onEvent({
      type: "retry",
      target: "t",
      method: "test.v1.EchoService/Echo",
      attempt: 2,
      code: Code.Unavailable,
      delayMs: 12,
      transparent: false,
    });
    events.onEvent({ type: "budget-exhausted", target: "t", method: "m", code: Code.Unavailable });
    const got = logs.lines().map((l) => [l.msg, l.level]);
    expect(got).toEqual([
      ["balancer endpoints", PINO.info],
      ["outlier ejected", PINO.info],
      ["outlier restored", PINO.info],
      ["resolver error", PINO.warn],
      ["breaker breaker", PINO.warn],
      ["registry registered", PINO.info],
      ["registry lease-lost", PINO.warn],
      ["retry retry", PINO.debug],
      ["retry budget-exhausted", PINO.debug],
    ]);
    const lines = logs.lines();
    expect(lines[1]).toMatchObject({
      event: "outlier.ejected",
      address: "10.0.0.1:50051",
      target: "mesh:///orders",
    });
    expect(lines[1]).not.toHaveProperty("until");
    expect(lines[3]?.err).toMatchObject({ message: "nxdomain" });
    expect(lines[4]).toMatchObject({
      key: "t test.v1.EchoService/Echo",
      from: "closed",
      to: "open",
    });
    expect(lines[5]).toMatchObject({ service: "orders", instance_id: "i-1" });
    expect(lines[7]).toMatchObject({ "grpc.code": "Unavailable", attempt: 2, delayMs: 12 });
  });
});
