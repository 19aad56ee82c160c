import { create, toBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EchoRequestSchema } from "../../gen/test/v1/echo_pb.js";
import { type CallScope, runInCallScope } from "../../src/call/call-scope.js";
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
import { hashForLog } from "../../src/observability/redact-headers.js";
import { createServerObserveInterceptor } from "../../src/observability/server-observe-interceptor.js";
import { formatTraceparent } from "../../src/observability/trace-context.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { createEchoGrpcClient, type EchoGrpcClient, grpcUnary } from "../support/grpc-js-echo.js";
import { rawGrpcCall } from "../support/raw-grpc.js";
import { captureLogs, type LogLine } from "./log-capture.js";

const PINO = { debug: 20, info: 30, warn: 40, error: 50 } as const;

describe("logging", () => {
  const logs = captureLogs();
  const closers: Array<() => Promise<void>> = [];
  const grpcClients: EchoGrpcClient[] = [];
  const tracestateSeenByB: Array<string | null> = [];
  let a: string;
  let b: string;
  let c: string;

  // Servers and transports are observed by default: the tests only hand
  // them the capturing logger.
  async function serve(
    impl: Partial<ReturnType<typeof createEchoImpl>>,
    interceptors: Interceptor[] = [],
  ): Promise<string> {
    const server: MeshServer = createMeshServer({
      routes: (r) => r.service(EchoService, { ...createEchoImpl(), ...impl }),
      interceptors,
      logger: logs.logger,
    });
    const { address } = await server.listen();
    closers.push(() => server.close({ graceMs: 0 }));
    return address;
  }
  function transport(target: string): MeshTransport {
    const t = createMeshTransport({ target, logger: logs.logger });
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

  /** callLines are the lines about calls; the rest are mesh events (no call, no trace). */
  function callLines(): { calls: LogLine[]; events: LogLine[] } {
    const lines = logs.lines();
    return {
      calls: lines.filter((l) => l.event === undefined),
      events: lines.filter((l) => l.event !== undefined),
    };
  }

  it("client → A → B → C: one trace; parent and child span ids form the chain", async () => {
    const client = createClient(EchoService, transport(a));
    const res = await client.echo({ payload: new Uint8Array([1]) }, { timeoutMs: 3000 });
    expect(res.servedBy).toBe("A>B>C");
    const { calls: lines, events } = callLines();
    // The transports' and servers' events share the logger: endpoint sets
    // (no call, no trace), and A's and B's idempotency (C was called without
    // a key), which carry the span of the call they are about.
    expect(events).toContainEqual(expect.objectContaining({ target: a, added: [a], size: 1 }));
    const idempotency = events.filter((e) => e.event !== "balancer.endpoints");
    expect(idempotency.map((e) => e.event).sort()).toEqual([
      "idempotency.claimed",
      "idempotency.claimed",
      "idempotency.completed",
      "idempotency.completed",
    ]);
    for (const e of events) {
      if (e.event === "balancer.endpoints") expect(e.trace_id).toBeUndefined();
    }
    const traceIds = new Set([...lines, ...idempotency].map((l) => l.trace_id));
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
    // A's and B's idempotency events carry their server spans.
    const spanOf = (name: string) => lines.find((l) => l.msg === name)?.span_id;
    expect(idempotency.map((e) => e.span_id).sort()).toEqual(
      [spanOf("in A"), spanOf("in A"), spanOf("in B"), spanOf("in B")].sort(),
    );
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
    // A raw client with no timer of its own: only the server's deadline can end
    // the call. A Connect client would reset the stream at the same moment and,
    // on a busy host, the server could see that reset (Internal) first.
    const body = toBinary(EchoRequestSchema, create(EchoRequestSchema, { delayMs: 500 }));
    const res = await rawGrpcCall(`http://${c}`, "/test.v1.EchoService/Echo", body, {
      "grpc-timeout": "50m",
    });
    expect(res.status).toBe(Code.DeadlineExceeded);
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
    // The mesh's own retry (on by default) retries the UNAVAILABLE: the
    // automatic idempotency key makes Echo safe to retry.
    await createClient(EchoService, transport(flaky)).echo({});
    expect(calls).toBe(2);
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
    // The retry is reported through the transport's events, into the same logger.
    const retries = logs.lines().filter((l) => l.event === "retry.retry");
    expect(retries).toHaveLength(1);
    expect(retries[0]).toMatchObject({
      level: PINO.debug,
      msg: "retry retry",
      target: flaky,
      method: "test.v1.EchoService/Echo",
      attempt: 2,
      "grpc.code": "Unavailable",
      transparent: false,
    });
  });

  it("with retry: false a call makes exactly one attempt", async () => {
    const failing = await serve({
      echo: () => {
        throw new ConnectError("down", Code.Unavailable);
      },
    });
    const t = createMeshTransport({ target: failing, logger: logs.logger, retry: false });
    closers.push(() => t.close());
    await expect(createClient(EchoService, t).echo({})).rejects.toThrow(/down/);
    expect(logs.finished("client")).toMatchObject([
      { "grpc.code": "Unavailable", "grpc.attempts": 1 },
    ]);
    expect(logs.lines().filter((l) => l.msg === "finished attempt")).toHaveLength(1);
    expect(logs.finished("server")).toHaveLength(1);
    expect(logs.lines().filter((l) => l.event?.toString().startsWith("retry."))).toEqual([]);
  });

  it("a replayed response is marked idempotency.replayed", async () => {
    let runs = 0;
    const replaying = await serve({
      echo: () => {
        runs++;
        return { servedBy: `run ${runs}` };
      },
    });
    const client = createClient(EchoService, transport(replaying));
    // The same key twice: the server's idempotency (on by default) replays
    // the first outcome.
    const headers = { "idempotency-key": "replay-k3y-1" };
    const first = await client.echo({ payload: new Uint8Array([7]) }, { headers });
    const second = await client.echo({ payload: new Uint8Array([7]) }, { headers });
    expect([runs, first.servedBy, second.servedBy]).toEqual([1, "run 1", "run 1"]);
    const servers = logs.finished("server");
    const clients = logs.finished("client");
    expect(servers).toHaveLength(2);
    expect(servers[0]).not.toHaveProperty("idempotency.replayed");
    expect(servers[1]).toMatchObject({ "grpc.code": "OK", "idempotency.replayed": true });
    expect(clients[0]).not.toHaveProperty("idempotency.replayed");
    expect(clients[1]).toMatchObject({ "grpc.code": "OK", "idempotency.replayed": true });
    // The server's idempotency events are logged too, with the key's digest only.
    const replayed = logs.lines().filter((l) => l.event === "idempotency.replayed");
    expect(replayed).toHaveLength(1);
    expect(replayed[0]).toMatchObject({
      level: PINO.info,
      method: "test.v1.EchoService/Echo",
      principal: "anonymous",
      keyDigest: hashForLog("replay-k3y-1").slice("sha256:".length),
    });
    expect(logs.raw.join("")).not.toContain("replay-k3y-1");
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
    const t = createMeshTransport({ target: c, logger: info.logger });
    closers.push(() => t.close());
    await createClient(EchoService, t).echo({});
    expect(info.finished("client")).toMatchObject([{ "grpc.code": "OK", "grpc.attempts": 1 }]);
    expect(info.lines().filter((l) => l.level < PINO.info)).toEqual([]);
    expect(info.lines().filter((l) => l.msg === "finished attempt")).toHaveLength(0);
    expect(logs.lines().filter((l) => l.msg === "finished attempt")).toHaveLength(0);
    // The attempt interceptor on its own, too.
    const alone = captureLogs("info");
    const bare = createMeshTransport({
      target: c,
      logger: false,
      interceptors: [createClientAttemptInterceptor({ logger: alone.logger })],
    });
    closers.push(() => bare.close());
    await createClient(EchoService, bare).echo({});
    expect(alone.raw).toHaveLength(0);
  });

  it("rejects a logger that is not pino", () => {
    expect(() => createServerObserveInterceptor({ logger: {} as never })).toThrow(TypeError);
    expect(() => createClientObserveInterceptor({ logger: console as never })).toThrow(TypeError);
    expect(() => createMeshServer({ routes: () => {}, logger: {} as never })).toThrow(TypeError);
    expect(() => createMeshTransport({ target: "127.0.0.1:1", logger: console as never })).toThrow(
      TypeError,
    );
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
    events.onEvent({
      type: "give-up",
      target: "t",
      method: "m",
      attempts: 3,
      code: Code.Unavailable,
      reason: "max-attempts",
    });
    events.onEvent({ type: "hedge", target: "t", method: "m", attempt: 2 });
    const call = {
      method: "test.v1.EchoService/Echo",
      principal: "anonymous",
      keyDigest: "0123456789ab",
    };
    events.onEvent({ type: "claimed", leaseMs: 1000, ...call });
    events.onEvent({ type: "replayed", code: undefined, ...call });
    events.onEvent({ type: "conflict", reason: "reused", ...call });
    events.onEvent({
      type: "store-error",
      operation: "claim",
      error: new Error("redis down"),
      failOpen: false,
      ...call,
    });
    events.onEvent({ source: "resolver", type: "stale", target: "dns:///x", sinceMs: 5 });
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
      ["retry give-up", PINO.debug],
      ["retry hedge", PINO.debug],
      ["idempotency claimed", PINO.debug],
      ["idempotency replayed", PINO.info],
      ["idempotency conflict", PINO.info],
      ["idempotency store-error", PINO.warn],
      ["resolver stale", PINO.warn],
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
    expect(lines[9]).toMatchObject({ attempts: 3, reason: "max-attempts" });
    expect(lines[12]).toMatchObject({ event: "idempotency.replayed", ...call });
    expect(lines[12]).not.toHaveProperty("code");
    expect(lines[14]?.err).toMatchObject({ message: "redis down" });
    // Outside an incoming call, idempotency lines carry no trace.
    expect(lines[12]).not.toHaveProperty("trace_id");
  });

  it("logs idempotency events with the span of the call being handled", () => {
    const logs = captureLogs();
    const events = createEventLogger(logs.logger);
    const span = {
      traceId: "1".repeat(32),
      spanId: "2".repeat(16),
      parentSpanId: "3".repeat(16),
      flags: 1,
    };
    const scope: CallScope = {
      timeoutMs: () => undefined,
      signal: new AbortController().signal,
      service: "test.v1.EchoService",
      method: "Echo",
      values: createContextValues().set(traceContextKey, span),
    };
    const call = { method: "test.v1.EchoService/Echo", principal: "p", keyDigest: "0123456789ab" };
    runInCallScope(scope, () => {
      events.onEvent({ type: "replayed", code: Code.NotFound, ...call });
      events.onEvent({ source: "outlier", target: "t", type: "restored", address: "a:1", at: 2 });
    });
    const [replayed, restored] = logs.lines();
    expect(replayed).toMatchObject({
      event: "idempotency.replayed",
      trace_id: span.traceId,
      span_id: span.spanId,
      parent_span_id: span.parentSpanId,
      trace_flags: "01",
      "grpc.code": "NotFound",
    });
    // Other families are not about the incoming call.
    expect(restored).not.toHaveProperty("trace_id");
  });
});
