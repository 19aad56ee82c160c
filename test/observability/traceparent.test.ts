import { AsyncLocalStorage } from "node:async_hooks";
import { createClient, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  type Context,
  type ContextManager,
  context,
  ROOT_CONTEXT,
  trace,
} from "@opentelemetry/api";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import {
  childOf,
  formatTraceparent,
  newRootContext,
  parseTraceparent,
  traceContextFromHeaders,
} from "../../src/observability/trace-context.js";
import { normalizeTracestate, TRACESTATE_MAX_LENGTH } from "../../src/observability/tracestate.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { captureLogs } from "./log-capture.js";

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const SPAN_ID = "b7ad6b7169203331";
const VALID = `00-${TRACE_ID}-${SPAN_ID}-01`;

/** MALFORMED traceparent values: each must start a new trace. */
const MALFORMED: ReadonlyArray<readonly [string, string]> = [
  ["empty", ""],
  ["garbage", "not a traceparent"],
  ["missing flags", `00-${TRACE_ID}-${SPAN_ID}`],
  ["uppercase trace id", `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`],
  ["uppercase span id", `00-${TRACE_ID}-${SPAN_ID.toUpperCase()}-01`],
  ["uppercase flags", `00-${TRACE_ID}-${SPAN_ID}-0A`],
  ["uppercase version", `0A-${TRACE_ID}-${SPAN_ID}-01`],
  ["all-zero trace id", `00-${"0".repeat(32)}-${SPAN_ID}-01`],
  ["all-zero span id", `00-${TRACE_ID}-${"0".repeat(16)}-01`],
  ["version ff", `ff-${TRACE_ID}-${SPAN_ID}-01`],
  ["non-hex version", `0g-${TRACE_ID}-${SPAN_ID}-01`],
  ["version 00 with an extra field", `${VALID}-extra`],
  ["version 00 with a trailing character", `${VALID}0`],
  ["short trace id", `00-${TRACE_ID.slice(1)}-${SPAN_ID}-01`],
  ["long trace id", `00-${TRACE_ID}a-${SPAN_ID}-01`],
  ["short span id", `00-${TRACE_ID}-${SPAN_ID.slice(1)}-01`],
  ["one-digit flags", `00-${TRACE_ID}-${SPAN_ID}-1`],
  ["non-hex trace id", `00-${TRACE_ID.slice(0, -1)}z-${SPAN_ID}-01`],
  ["underscores for dashes", `00_${TRACE_ID}_${SPAN_ID}_01`],
  ["higher version, junk after flags", `cc-${TRACE_ID}-${SPAN_ID}-01x`],
  ["two headers joined", `${VALID}, 00-${"1".repeat(32)}-${"2".repeat(16)}-01`],
  ["very long", `00-${"a".repeat(10_000)}`],
  ["non-ASCII", `00-${TRACE_ID.slice(0, -1)}é-${SPAN_ID}-01`],
];

describe("traceparent parsing", () => {
  it.each(MALFORMED)("%s is rejected", (_name, value) => {
    expect(() => parseTraceparent(value)).not.toThrow();
    expect(parseTraceparent(value)).toBeUndefined();
  });

  it("has at least 15 malformed cases", () => {
    expect(MALFORMED.length).toBeGreaterThanOrEqual(15);
  });

  it("null, undefined and non-strings are rejected without throwing", () => {
    expect(parseTraceparent(null)).toBeUndefined();
    expect(parseTraceparent(undefined)).toBeUndefined();
    expect(parseTraceparent(42 as unknown as string)).toBeUndefined();
  });

  it.each([
    ["the spec's example", VALID, { traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 }],
    ["not sampled", `00-${TRACE_ID}-${SPAN_ID}-00`, { flags: 0 }],
    ["surrounding white space", ` ${VALID}\t`, { traceId: TRACE_ID }],
    ["a higher version of 55 characters", `cc-${TRACE_ID}-${SPAN_ID}-01`, { flags: 1 }],
    [
      "a higher version with more fields",
      `cc-${TRACE_ID}-${SPAN_ID}-01-what-the-future-will-be-like`,
      { traceId: TRACE_ID, spanId: SPAN_ID, flags: 1 },
    ],
    ["a higher version keeps only `sampled`", `cc-${TRACE_ID}-${SPAN_ID}-09`, { flags: 1 }],
    ["version 00 keeps every flag", `00-${TRACE_ID}-${SPAN_ID}-03`, { flags: 3 }],
  ])("%s is accepted", (_name, value, expected) => {
    expect(parseTraceparent(value)).toMatchObject(expected);
  });

  it("formats version 00 and round-trips", () => {
    const ctx = parseTraceparent(VALID);
    expect(ctx).toBeDefined();
    expect(formatTraceparent(ctx!)).toBe(VALID);
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, flags: 0 })).toBe(
      `00-${TRACE_ID}-${SPAN_ID}-00`,
    );
  });

  it("newRootContext makes random, valid, sampled ids; childOf keeps the trace", () => {
    const root = newRootContext();
    expect(root.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(root.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(root.flags).toBe(1);
    expect(root.parentSpanId).toBeUndefined();
    expect(newRootContext({ sampled: false }).flags).toBe(0);
    const child = childOf({ ...root, flags: 0xff, tracestate: "a=1" });
    expect(child).toMatchObject({
      traceId: root.traceId,
      parentSpanId: root.spanId,
      tracestate: "a=1",
    });
    expect(child.spanId).not.toBe(root.spanId);
    expect(child.flags).toBe(3); // unknown flags are zeroed when propagating
    const ids = new Set(Array.from({ length: 2000 }, () => newRootContext().spanId));
    expect(ids.size).toBe(2000);
  });
});

describe("tracestate", () => {
  const member = (i: number, len = 8) => `k${i}=${"v".repeat(len)}`;
  it.each([
    ["no equals sign", "foo"],
    ["empty key", "=bar"],
    ["uppercase key", "Foo=bar"],
    ["key starting with a digit", "1foo=bar"],
    ["duplicate keys", "foo=bar,foo=baz"],
    ["equals sign in the value", "foo=bar=baz"],
    ["empty value", "foo="],
    ["non-ASCII value", "foo=bär"],
    ["bad system id", "tenant@=bar"],
    ["system id too long", `tenant@${"s".repeat(15)}=bar`],
    ["key too long", `${"k".repeat(257)}=v`],
    ["value too long", `k=${"v".repeat(257)}`],
    ["33 members", Array.from({ length: 33 }, (_, i) => member(i)).join(",")],
    ["one bad member among good ones", "a=1,B=2,c=3"],
  ])("%s drops the whole tracestate", (_name, value) => {
    expect(() => normalizeTracestate(value)).not.toThrow();
    expect(normalizeTracestate(value)).toBeUndefined();
  });

  it.each([
    ["two members", "a=1,b=2", "a=1,b=2"],
    ["optional white space", " a=1 ,\tb=2 ", "a=1,b=2"],
    ["empty members", "a=1,,b=2,", "a=1,b=2"],
    ["multi-tenant key", "tenant@vendor=v,x=y", "tenant@vendor=v,x=y"],
    [
      "special characters",
      "a_-*/b=!\"#$%&'()*+-./:;<>?@[]^_`{|}~ x",
      "a_-*/b=!\"#$%&'()*+-./:;<>?@[]^_`{|}~ x",
    ],
  ])("%s is kept", (_name, value, expected) => {
    expect(normalizeTracestate(value)).toBe(expected);
  });

  it("empty or absent means none", () => {
    expect(normalizeTracestate("")).toBeUndefined();
    expect(normalizeTracestate(" , ")).toBeUndefined();
    expect(normalizeTracestate(null)).toBeUndefined();
  });

  it("keeps 32 members", () => {
    const value = Array.from({ length: 32 }, (_, i) => member(i)).join(",");
    expect(normalizeTracestate(value)).toBe(value);
  });

  it("cuts a long list to 512 characters: long members first, then from the end", () => {
    const members = Array.from({ length: 10 }, (_, i) => member(i, 56)); // 60 chars each
    const long = `long=${"x".repeat(200)}`;
    const value = [members[0], long, ...members.slice(1)].join(",");
    const out = normalizeTracestate(value);
    expect(out).toBeDefined();
    expect(out!.length).toBeLessThanOrEqual(TRACESTATE_MAX_LENGTH);
    expect(out!.length).toBeGreaterThan(TRACESTATE_MAX_LENGTH - 61);
    expect(out).not.toContain("long=");
    expect(out!.split(",")).toEqual(members.slice(0, 8)); // 8 * 60 + 7 = 487
  });

  it("is read only with a valid traceparent", () => {
    const h = (tp: string, ts: string) => new Headers({ traceparent: tp, tracestate: ts });
    expect(traceContextFromHeaders(h(VALID, "a=1"))).toMatchObject({ tracestate: "a=1" });
    expect(traceContextFromHeaders(h(VALID, "A=1"))).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      flags: 1,
    });
    expect(traceContextFromHeaders(h("bad", "a=1"))).toBeUndefined();
  });
});

describe("traceparent over the wire", () => {
  const logs = captureLogs();
  const seen: Array<{ traceparent: string | null; tracestate: string | null }> = [];
  let server: MeshServer;
  // plain is a Connect gRPC transport with no observability: it sends the
  // traceparent exactly as given, so the server sees the malformed values.
  let plain: Transport;
  // observed is a mesh transport, observed by default.
  let observed: MeshTransport;

  beforeAll(async () => {
    server = createMeshServer({
      routes: (r) =>
        r.service(EchoService, {
          ...createEchoImpl(),
          echo: (_req, ctx) => {
            seen.push({
              traceparent: ctx.requestHeader.get("traceparent"),
              tracestate: ctx.requestHeader.get("tracestate"),
            });
            return {};
          },
        }),
      logger: logs.logger,
    });
    const { address, url } = await server.listen();
    plain = createGrpcTransport({ baseUrl: url });
    observed = createMeshTransport({ target: address, logger: logs.logger });
  });
  afterAll(async () => {
    await observed.close();
    await server.close({ graceMs: 0 });
  });
  afterEach(() => {
    logs.raw.length = 0;
    seen.length = 0;
  });

  // Only values Headers accepts can be sent at all.
  const sendable = MALFORMED.filter(([, v]) => {
    try {
      new Headers({ traceparent: v });
      return true;
    } catch {
      return false;
    }
  });

  it.each(sendable)("a server receiving %s starts a new trace", async (_name, value) => {
    const client = createClient(EchoService, plain);
    await client.echo({}, { headers: { traceparent: value, tracestate: "a=1" } });
    expect(seen[0]?.traceparent).toBe(new Headers({ traceparent: value }).get("traceparent"));
    const [line] = logs.finished("server");
    expect(line?.["grpc.code"]).toBe("OK");
    expect(line?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(line?.trace_id).not.toBe(TRACE_ID);
    expect(line?.parent_span_id).toBeUndefined();
  });

  it.each(sendable)(
    "a mesh client given %s starts a new trace and sends a valid one",
    async (_name, value) => {
      const client = createClient(EchoService, observed);
      await client.echo({}, { headers: { traceparent: value, tracestate: "a=1" } });
      const [call] = logs.finished("client");
      expect(call?.["grpc.code"]).toBe("OK");
      expect(call?.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(call?.trace_id).not.toBe(TRACE_ID);
      expect(call?.parent_span_id).toBeUndefined();
      const sent = parseTraceparent(seen[0]?.traceparent);
      expect(sent?.traceId).toBe(call?.trace_id);
      // The malformed header's tracestate is not forwarded either.
      expect(seen[0]?.tracestate).toBeNull();
      expect(logs.finished("server")[0]).toMatchObject({
        trace_id: call?.trace_id,
        parent_span_id: sent?.spanId,
      });
    },
  );

  it("a server continues a valid traceparent with a new span", async () => {
    const client = createClient(EchoService, plain);
    await client.echo({}, { headers: { traceparent: VALID, tracestate: "vendor=x" } });
    expect(seen[0]).toEqual({ traceparent: VALID, tracestate: "vendor=x" });
    const [line] = logs.finished("server");
    expect(line).toMatchObject({ trace_id: TRACE_ID, parent_span_id: SPAN_ID, trace_flags: "01" });
    expect(line?.span_id).not.toBe(SPAN_ID);
  });

  it("each attempt sends its own span with the caller's tracestate; bad tracestate is not sent", async () => {
    const client = createClient(EchoService, observed);
    await client.echo({}, { headers: { traceparent: VALID, tracestate: "vendor=x" } });
    await client.echo({}, { headers: { traceparent: VALID, tracestate: "Bad=x" } });
    expect(seen[0]?.tracestate).toBe("vendor=x");
    expect(seen[1]?.tracestate).toBeNull();
    const sent = parseTraceparent(seen[0]?.traceparent);
    expect(sent?.traceId).toBe(TRACE_ID);
    const call = logs.finished("client")[0];
    const attempts = logs.lines().filter((l) => l.msg === "finished attempt");
    expect(attempts).toHaveLength(2);
    const attempt = attempts[0];
    // forwarded traceparent → logical call span → attempt span → server span
    expect(call).toMatchObject({ trace_id: TRACE_ID, parent_span_id: SPAN_ID, "grpc.attempts": 1 });
    expect(attempt).toMatchObject({ parent_span_id: call?.span_id, attempt: 1 });
    expect(sent?.spanId).toBe(attempt?.span_id);
    expect(logs.finished("server")[0]?.parent_span_id).toBe(attempt?.span_id);
  });

  describe("with @opentelemetry/api and an active span", () => {
    // The API alone has a no-op context manager; this is the least one that works.
    class TestContextManager implements ContextManager {
      private readonly storage = new AsyncLocalStorage<Context>();
      active(): Context {
        return this.storage.getStore() ?? ROOT_CONTEXT;
      }
      with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
        ctx: Context,
        fn: F,
        thisArg?: ThisParameterType<F>,
        ...args: A
      ): ReturnType<F> {
        return this.storage.run(ctx, () => fn.call(thisArg, ...args));
      }
      bind<T>(_ctx: Context, target: T): T {
        return target;
      }
      enable(): this {
        return this;
      }
      disable(): this {
        this.storage.disable();
        return this;
      }
    }
    beforeAll(() => {
      expect(context.setGlobalContextManager(new TestContextManager())).toBe(true);
    });
    afterAll(() => {
      context.disable();
    });

    it("a client call continues the active OpenTelemetry span", async () => {
      const otelTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
      const otelSpan = "00f067aa0ba902b7";
      const active = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: otelTrace,
        spanId: otelSpan,
        traceFlags: 1,
        isRemote: false,
      });
      const client = createClient(EchoService, observed);
      await context.with(active, () => client.echo({}));
      const call = logs.finished("client")[0];
      expect(call).toMatchObject({ trace_id: otelTrace, parent_span_id: otelSpan });
      expect(logs.finished("server")[0]?.trace_id).toBe(otelTrace);
      expect(parseTraceparent(seen[0]?.traceparent)?.traceId).toBe(otelTrace);
    });

    it("without an active span a client call starts a new trace", async () => {
      const client = createClient(EchoService, observed);
      await client.echo({});
      const call = logs.finished("client")[0];
      expect(call?.parent_span_id).toBeUndefined();
      expect(call?.trace_id).not.toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    });
  });
});
