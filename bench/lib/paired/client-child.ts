// Paired client child: one connect-mesh transport per configuration (each
// aimed at its own server), a closed loop of `inFlight` unary calls on one of
// them at a time (start-load → mark-begin → mark-end → stop-load), and the
// exactly-once soak: every key sent `copies` times at once, each copy through
// another transport (another replica). Driven over IPC (see protocol.ts).

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  CreateOrderRequestSchema,
  OrderService,
} from "../../../gen/example/orders/v1/orders_pb.js";
import { EchoRequestSchema, EchoService } from "../../../gen/test/v1/echo_pb.js";
import {
  createMeshTransport,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENCY_REPLAYED_HEADER,
  type MeshTransport,
} from "../../../src/index.js";
import { errorMessage, serveCommands, WindowMeter } from "../child.js";
import { Samples } from "../stats.js";
import { type FileLog, openFileLog, summarizeLog } from "./file-log.js";
import {
  type ClientChildInit,
  type ClientWindow,
  type LoadStopped,
  type LogSummary,
  type PairedClientSpec,
  type SoakRequest,
  type SoakResult,
  soakKey,
} from "./protocol.js";

interface CallOptions {
  readonly timeoutMs?: number;
  readonly headers?: Record<string, string>;
  readonly onHeader?: (h: Headers) => void;
}

interface Hosted {
  readonly spec: PairedClientSpec;
  readonly transport: MeshTransport;
  readonly log: FileLog | undefined;
  /** call makes one unary call with the configuration's fixed request. */
  readonly call: (opts: CallOptions) => Promise<unknown>;
  /** createOrder sends CreateOrder for a given customer_id (soak; orders only). */
  readonly createOrder: (customerId: string, opts: CallOptions) => Promise<unknown>;
  /** calls counts every call made through this transport (probe, load, soak). */
  calls: number;
}

const hosted = new Map<string, Hosted>();

function open(spec: PairedClientSpec): Hosted {
  const log = openFileLog(spec.log);
  const transport = createMeshTransport({
    target: spec.target,
    acceptCompression: [],
    logger: log === undefined ? false : log.logger,
    ...(spec.idempotencyKeys ? {} : { idempotencyKeys: false as const }),
  });
  if (spec.service === "orders") {
    const client = createClient(OrderService, transport);
    const items = [{ sku: "sku-1", quantity: 2, unitPriceCents: 1250n }];
    const req = create(CreateOrderRequestSchema, { customerId: "c-1", items });
    return {
      spec,
      transport,
      log,
      calls: 0,
      call: (opts) => client.createOrder(req, opts),
      createOrder: (customerId, opts) =>
        client.createOrder(create(CreateOrderRequestSchema, { customerId, items }), opts),
    };
  }
  const client = createClient(EchoService, transport);
  const payload = new Uint8Array(spec.payloadBytes ?? 128);
  for (let i = 0; i < payload.length; i++) {
    payload[i] = (i * 31 + 7) & 0xff;
  }
  const req = create(EchoRequestSchema, { payload });
  return {
    spec,
    transport,
    log,
    calls: 0,
    call: async (opts) => {
      const res = await client.echo(req, opts);
      if (res.payload.byteLength !== payload.byteLength) {
        throw new Error(
          `echo returned ${res.payload.byteLength} bytes, sent ${payload.byteLength}`,
        );
      }
      return res;
    },
    createOrder: () => Promise.reject(new Error("createOrder: not an orders client")),
  };
}

// --- Closed loop -------------------------------------------------------------

const meter = new WindowMeter();
const latencies = new Samples(1 << 16);
let loaded: Hosted | undefined;
let logBytesBegin = 0;
let running = false;
let recording = false;
let workers: Promise<void>[] = [];
let w = { calls: 0, errors: 0, replayed: 0, firstError: undefined as string | undefined };
let total = { calls: 0, errors: 0, firstError: undefined as string | undefined };

async function worker(h: Hosted, timeoutMs: number | undefined): Promise<void> {
  let replayed = false;
  const opts: CallOptions = {
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    onHeader(headers) {
      replayed = headers.get(IDEMPOTENCY_REPLAYED_HEADER) === "true";
    },
  };
  while (running) {
    replayed = false;
    const t0 = performance.now();
    let failure: string | undefined;
    h.calls++;
    try {
      await h.call(opts);
    } catch (err) {
      failure = errorMessage(err);
    }
    const dt = performance.now() - t0;
    if (failure === undefined) {
      total.calls++;
      if (recording) {
        w.calls++;
        latencies.add(dt);
        if (replayed) {
          w.replayed++;
        }
      }
    } else {
      total.errors++;
      total.firstError ??= failure;
      if (recording) {
        w.errors++;
        w.firstError ??= failure;
      }
      // A failing call may settle without I/O; yield so IPC and timers still run.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

// --- Soak --------------------------------------------------------------------

async function soak(req: SoakRequest): Promise<SoakResult> {
  const clients = req.clients.map((name) => {
    const h = hosted.get(name);
    if (h === undefined || h.spec.service !== "orders") {
      throw new Error(`soak: no orders client ${name}`);
    }
    return h;
  });
  const lat = new Samples(req.keys * req.copies);
  const errorsByCode: Record<string, number> = {};
  let firstError: string | undefined;
  let ok = 0;
  let replayed = 0;
  let errors = 0;
  let keysWithoutFresh = 0;
  let keysWithSeveralFresh = 0;
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();

  async function one(i: number, copy: number): Promise<boolean | undefined> {
    const key = soakKey(req.run, i);
    const h = clients[(i + copy) % clients.length] as Hosted;
    let wasReplayed = false;
    const t = performance.now();
    h.calls++;
    try {
      await h.createOrder(key, {
        timeoutMs: req.timeoutMs,
        headers: { [IDEMPOTENCY_KEY_HEADER]: key },
        onHeader(headers) {
          wasReplayed = headers.get(IDEMPOTENCY_REPLAYED_HEADER) === "true";
        },
      });
      lat.add(performance.now() - t);
      ok++;
      if (wasReplayed) {
        replayed++;
      }
      return !wasReplayed;
    } catch (err) {
      errors++;
      const code = Code[ConnectError.from(err).code] ?? "unknown";
      errorsByCode[code] = (errorsByCode[code] ?? 0) + 1;
      firstError ??= errorMessage(err);
      return undefined;
    }
  }

  async function keyWorker(): Promise<void> {
    for (let i = next++; i < req.keys; i = next++) {
      const outcomes = await Promise.all(
        Array.from({ length: req.copies }, (_, copy) => one(i, copy)),
      );
      const fresh = outcomes.filter((o) => o === true).length;
      if (fresh === 0) {
        keysWithoutFresh++;
      } else if (fresh > 1) {
        keysWithSeveralFresh++;
      }
    }
  }

  await Promise.all(Array.from({ length: Math.max(1, req.keysInFlight) }, keyWorker));
  const elapsedMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const s = lat.summary();
  return {
    keys: req.keys,
    calls: req.keys * req.copies,
    elapsedMs,
    ok,
    replayed,
    fresh: ok - replayed,
    errors,
    errorsByCode,
    ...(firstError === undefined ? {} : { firstError }),
    keysWithoutFresh,
    keysWithSeveralFresh,
    latencyMs: { p50: s.p50, p99: s.p99, max: s.max },
    cpuUs: cpu.user + cpu.system,
  };
}

// --- Commands ------------------------------------------------------------------

serveCommands({
  async init(args) {
    const init = args as ClientChildInit;
    for (const spec of init.clients) {
      hosted.set(spec.name, open(spec));
    }
    // One probe call per transport connects its HTTP/2 session before any clock starts.
    await Promise.all(
      [...hosted.values()].map((h) => {
        h.calls++;
        return h.call({ timeoutMs: 10_000 });
      }),
    );
  },
  "start-load"(args) {
    const { name, inFlight, timeoutMs } = args as {
      name: string;
      inFlight: number;
      timeoutMs?: number;
    };
    const h = hosted.get(name);
    if (h === undefined) {
      throw new Error(`no client ${name}`);
    }
    if (running) {
      throw new Error("start-load: a load is running");
    }
    loaded = h;
    running = true;
    total = { calls: 0, errors: 0, firstError: undefined };
    workers = Array.from({ length: inFlight }, () => worker(h, timeoutMs));
  },
  "mark-begin"() {
    latencies.clear();
    w = { calls: 0, errors: 0, replayed: 0, firstError: undefined };
    recording = true;
    logBytesBegin = loaded?.log?.written() ?? 0;
    meter.begin();
  },
  "mark-end"(): ClientWindow {
    recording = false;
    const m = meter.end();
    const s = latencies.summary();
    return {
      elapsedMs: m.elapsedMs,
      cpuUs: m.cpuUs,
      maxRssBytes: m.maxRssBytes,
      warnings: m.warnings,
      calls: w.calls,
      errors: w.errors,
      ...(w.firstError === undefined ? {} : { firstError: w.firstError }),
      replayed: w.replayed,
      latencyMs: { p50: s.p50, p99: s.p99, p999: s.p999 },
      logBytesBegin,
      logBytesEnd: loaded?.log?.written() ?? 0,
    };
  },
  progress(): LoadStopped {
    return { calls: total.calls, errors: total.errors };
  },
  async "stop-load"(): Promise<LoadStopped> {
    running = false;
    await Promise.all(workers);
    workers = [];
    loaded = undefined;
    return {
      calls: total.calls,
      errors: total.errors,
      ...(total.firstError === undefined ? {} : { firstError: total.firstError }),
    };
  },
  soak(args) {
    return soak(args as SoakRequest);
  },
  async "log-summary"(): Promise<LogSummary> {
    const files: LogSummary["files"][number][] = [];
    for (const h of hosted.values()) {
      if (h.log !== undefined) {
        await h.log.flush();
        files.push(await summarizeLog(h.spec.name, h.log.path, h.calls));
      }
    }
    return { files };
  },
  async close() {
    running = false;
    await Promise.all(workers);
    await Promise.all([...hosted.values()].map((h) => h.transport.close()));
    await Promise.all([...hosted.values()].map((h) => h.log?.flush()));
    setTimeout(() => process.exit(0), 20).unref();
  },
});
