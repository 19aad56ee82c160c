// Benchmark client child: a closed-loop load generator keeping `inFlight`
// unary Echo calls outstanding (or `inFlight` server streams, or `inFlight`
// bidi streams doing ping-pong round trips: see Workload). Driven over IPC by the runner (lib/protocol.ts):
// load → init → start → mark-begin → mark-end → stop. Latencies and counts are kept
// only between the marks; CPU is measured over the same window.

import { errorMessage, serveCommands, WindowMeter } from "./lib/child.js";
import type {
  ClientInit,
  ClientLoad,
  ClientStopped,
  ClientWindow,
  Workload,
} from "./lib/protocol.js";
import { loadStack } from "./lib/stacks/index.js";
import type { EchoClientHandle, Stack } from "./lib/stacks/types.js";
import { Samples } from "./lib/stats.js";

let client: EchoClientHandle | undefined;
let payload = new Uint8Array(0);
let inFlight = 1;
let workload: Workload = "unary";
let streamMessages = 1000;
let running = false;
let recording = false;
let workers: Promise<void>[] = [];

const meter = new WindowMeter();
const latencies = new Samples(1 << 16);
let windowCalls = 0;
let windowErrors = 0;
let windowFirstError: string | undefined;
let totalCalls = 0;
let totalErrors = 0;
let firstError: string | undefined;

/** intervalMs paces each unary caller (inFlight / ratePerSec); 0: closed loop. */
let intervalMs = 0;

async function worker(c: EchoClientHandle): Promise<void> {
  // Callers start spread over one interval, so paced calls do not bunch.
  let next = performance.now() + Math.random() * intervalMs;
  while (running) {
    if (intervalMs > 0) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      // A caller that fell behind starts at once, but never makes up the lost slots in a burst.
      next = Math.max(next + intervalMs, performance.now());
      if (!running) break;
    }
    const t0 = performance.now();
    let failure: string | undefined;
    try {
      const res = await c.echo(payload);
      if (res.byteLength !== payload.byteLength) {
        failure = `echo returned ${res.byteLength} bytes, sent ${payload.byteLength}`;
      }
    } catch (err) {
      failure = errorMessage(err);
    }
    const dt = performance.now() - t0;
    if (failure === undefined) {
      totalCalls++;
      if (recording) {
        windowCalls++;
        latencies.add(dt);
      }
    } else {
      totalErrors++;
      firstError ??= failure;
      if (recording) {
        windowErrors++;
        windowFirstError ??= failure;
      }
      // A failing call may settle without I/O; yield so IPC and timers still run.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

function recordOk(dt: number): void {
  totalCalls++;
  if (recording) {
    windowCalls++;
    latencies.add(dt);
  }
}

function recordError(err: unknown): void {
  const failure = errorMessage(err);
  totalErrors++;
  firstError ??= failure;
  if (recording) {
    windowErrors++;
    windowFirstError ??= failure;
  }
}

/**
 * streamWorker runs server streams back to back; each message counts as one
 * unit, its latency the gap since the previous message of the same caller.
 */
async function streamWorker(c: EchoClientHandle): Promise<void> {
  while (running) {
    let t0 = performance.now();
    try {
      await c.serverStream(payload, streamMessages, (m) => {
        const t1 = performance.now();
        if (m.byteLength === payload.byteLength) {
          recordOk(t1 - t0);
        } else {
          recordError(
            new Error(`stream sent ${m.byteLength} bytes, expected ${payload.byteLength}`),
          );
        }
        t0 = t1;
        return running;
      });
    } catch (err) {
      recordError(err);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** bidiWorker keeps one bidi stream and does round trips on it; each is one unit. */
async function bidiWorker(c: EchoClientHandle): Promise<void> {
  while (running) {
    const stream = c.openBidi();
    try {
      while (running) {
        const t0 = performance.now();
        const res = await stream.roundTrip(payload);
        if (res.byteLength === payload.byteLength) {
          recordOk(performance.now() - t0);
        } else {
          recordError(
            new Error(`bidi sent ${res.byteLength} bytes, expected ${payload.byteLength}`),
          );
        }
      }
      await stream.close();
    } catch (err) {
      recordError(err);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

const WORKERS: Record<Workload, (c: EchoClientHandle) => Promise<void>> = {
  unary: worker,
  "server-stream": streamWorker,
  bidi: bidiWorker,
};

let loading: Promise<Stack> | undefined;

serveCommands({
  // load imports the client library while the servers are still starting.
  async load(args) {
    loading = loadStack((args as ClientLoad).stack);
    await loading;
  },
  async init(args) {
    const init = args as ClientInit;
    const stack = await (loading ?? loadStack(init.spec.stack));
    client = stack.createClient(init.targets, init.spec.options ?? {});
    payload = new Uint8Array(init.payloadBytes);
    for (let i = 0; i < payload.length; i++) {
      payload[i] = (i * 31 + 7) & 0xff;
    }
    inFlight = init.inFlight;
    workload = init.workload ?? "unary";
    streamMessages = init.streamMessages ?? streamMessages;
    intervalMs = init.ratePerSec === undefined ? 0 : (1000 * init.inFlight) / init.ratePerSec;
    // One probe call per target connects the HTTP/2 sessions before the clock starts.
    for (let i = 0; i < init.targets.length; i++) {
      await client.echo(payload);
    }
  },
  start() {
    const c = client;
    if (c === undefined) {
      throw new Error("start before init");
    }
    running = true;
    const run = WORKERS[workload];
    workers = Array.from({ length: inFlight }, () => run(c));
  },
  "mark-begin"() {
    latencies.clear();
    windowCalls = 0;
    windowErrors = 0;
    windowFirstError = undefined;
    recording = true;
    meter.begin();
  },
  "mark-end"(): ClientWindow {
    recording = false;
    const w = meter.end();
    const s = latencies.summary();
    return {
      ...w,
      calls: windowCalls,
      errors: windowErrors,
      ...(windowFirstError === undefined ? {} : { firstError: windowFirstError }),
      latencyMs: { p50: s.p50, p90: s.p90, p99: s.p99, p999: s.p999, max: s.max, mean: s.mean },
    };
  },
  async stop(): Promise<ClientStopped> {
    running = false;
    await Promise.all(workers);
    await client?.close();
    setTimeout(() => process.exit(0), 20).unref();
    return {
      totalCalls,
      totalErrors,
      ...(firstError === undefined ? {} : { firstError }),
    };
  },
});
