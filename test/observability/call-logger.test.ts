import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  createCallLoggerFactory,
  createMethodLogger,
} from "../../src/observability/call-logger.js";

// Raw lines of a pino logger writing into memory, `time` pinned.
function rawLogger(options: pino.LoggerOptions = {}) {
  const raw: string[] = [];
  const logger = pino(
    { level: "info", timestamp: () => ',"time":1', ...options },
    { write: (s: string) => raw.push(s) },
  );
  return { logger, raw };
}

const method = { "grpc.component": "server", "grpc.method": "Echo" };
const bindings = () => ({ trace_id: "t1", "peer.address": undefined });

describe("call logger: the per-call child is built only when used", () => {
  it("writes the same bytes as a child logger would, without building one", () => {
    const viaChild = rawLogger();
    viaChild.logger
      .child({ ...method, ...bindings() })
      .info({ "grpc.code": "OK", n: 1 }, "finished call");
    const lazy = rawLogger();
    let built = 0;
    const make = createCallLoggerFactory(lazy.logger)(method);
    const log = make(() => {
      built++;
      return bindings();
    });
    expect(log.isLevelEnabled("info")).toBe(true);
    expect(log.isLevelEnabled("debug")).toBe(false);
    log.write("info", { "grpc.code": "OK", n: 1 }, "finished call");
    expect(lazy.raw).toEqual(viaChild.raw);
    // The bindings were built for the line, but no child was made (the line
    // went through the root logger): a later use of `logger` builds it.
    expect(built).toBe(1);
  });

  it("hands handlers a logger that behaves like the child", () => {
    const { logger, raw } = rawLogger();
    const log = createCallLoggerFactory(logger)(method)(bindings);
    log.logger.info("in handler");
    log.logger.child({ step: 2 }).warn({ x: 1 }, "nested");
    log.logger.setBindings({ "authz.decision": "allow" });
    log.write("info", { "grpc.code": "OK" }, "finished call");
    log.logger.level = "error";
    expect(log.logger.level).toBe("error");
    expect(log.isLevelEnabled("info")).toBe(false);
    log.logger.info("dropped");
    const lines = raw.map((l) => JSON.parse(l));
    expect(lines.map((l) => l.msg)).toEqual(["in handler", "nested", "finished call"]);
    expect(lines[0]).toMatchObject({ trace_id: "t1", "grpc.method": "Echo" });
    expect(lines[2]).toMatchObject({ "grpc.component": "server", "grpc.method": "Echo" });
    expect(lines[1]).toMatchObject({ trace_id: "t1", step: 2, x: 1, level: 40 });
    expect(lines[2]).toMatchObject({
      trace_id: "t1",
      "authz.decision": "allow",
      "grpc.code": "OK",
    });
    expect("info" in log.logger).toBe(true);
    // The stand-in reports the real child's prototype chain, which leads to the root.
    expect(Object.prototype.isPrototypeOf.call(logger, log.logger)).toBe(true);
    expect(Object.getPrototypeOf(log.logger)).not.toBe(Object.getPrototypeOf(logger));
  });

  it("uses a real child when the root logger formats bindings or lines", () => {
    const formatters = {
      bindings: (b: Record<string, unknown>) => ({ pid: b.pid, bound: Object.keys(b).length }),
    };
    const viaChild = rawLogger({ formatters });
    viaChild.logger
      .child({ ...method, ...bindings() })
      .info({ "grpc.code": "OK" }, "finished call");
    const lazy = rawLogger({ formatters });
    createCallLoggerFactory(lazy.logger)(method)(bindings).write(
      "info",
      { "grpc.code": "OK" },
      "finished call",
    );
    expect(lazy.raw).toEqual(viaChild.raw);

    const logFormat = { log: (o: Record<string, unknown>) => ({ ...o, formatted: true }) };
    const a = rawLogger({ formatters: logFormat });
    a.logger.child({ ...method, ...bindings() }).info({ "grpc.code": "OK" }, "finished call");
    const b = rawLogger({ formatters: logFormat });
    createCallLoggerFactory(b.logger)(method)(bindings).write(
      "info",
      { "grpc.code": "OK" },
      "finished call",
    );
    expect(b.raw).toEqual(a.raw);
  });
});

describe("method logger: a method's constant fields are rendered once", () => {
  it("writes the bytes the root would with the fields on the line", () => {
    const onRoot = rawLogger();
    onRoot.logger.info({ ...method, trace_id: "t1", "grpc.code": "OK" }, "finished call");
    const bound = rawLogger();
    createMethodLogger(bound.logger, method)?.().info(
      { trace_id: "t1", "grpc.code": "OK" },
      "finished call",
    );
    expect(bound.raw).toEqual(onRoot.raw);
  });

  it("follows the root's level and bindings changed after it was made", () => {
    const { logger, raw } = rawLogger({ level: "warn" });
    const line = createMethodLogger(logger, method);
    expect(line?.().isLevelEnabled("info")).toBe(false);
    logger.level = "info";
    logger.setBindings({ region: "eu" });
    line?.().info({ "grpc.code": "OK" }, "finished call");
    logger.level = "error";
    line?.().info({ "grpc.code": "OK" }, "dropped");
    expect(raw.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ region: "eu", "grpc.method": "Echo", msg: "finished call" }),
    ]);
  });

  it("is undefined for a root that formats bindings or lines", () => {
    const { logger } = rawLogger({ formatters: { log: (o: Record<string, unknown>) => o } });
    expect(createMethodLogger(logger, method)).toBeUndefined();
  });
});
