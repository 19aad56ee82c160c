// The demo's overload phase: one mesh server in this process with a fixed
// capacity (4 workers, 100 ms a call: 40 calls/s) and the adaptive
// concurrency limit (gradient2), offered 0.5x its capacity, then a burst at
// 3x, then 0.5x again, with open-loop (Poisson) arrivals. The summary shows
// the limit adapting, the goodput held at the capacity, and the excess
// refused at once with RESOURCE_EXHAUSTED + grpc-retry-pushback-ms instead of
// queueing until every call is late.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createMeshServer, createMeshTransport, type LimitEvent } from "../../src/index.js";
import { OrderService } from "../order-service.js";

const WORKERS = 4;
const SERVICE_MS = 100;
/** CAPACITY_RPS is what the workers can serve: 4 / 50 ms. */
export const CAPACITY_RPS = (WORKERS * 1_000) / SERVICE_MS;
const BURST_FACTOR = 3;
const CALM_FACTOR = 0.5;
const CALL_TIMEOUT_MS = 2_000;

/** OverloadResult is what the overload phase measured. */
export interface OverloadResult {
  readonly capacityRps: number;
  readonly burstS: number;
  readonly offeredRps: number;
  readonly ok: number;
  readonly refused: number;
  readonly timedOut: number;
  readonly otherErrors: number;
  readonly goodputRps: number;
  readonly calmP99Ms: number;
  readonly burstP99Ms: number;
  readonly limitBefore: number;
  readonly limitLowest: number;
  readonly limitAfterBurst: number;
  readonly limitChanges: number;
  readonly pushbackMs: string | null;
}

interface Call {
  readonly phase: "calm" | "burst" | "after";
  readonly latencyMs: number;
  readonly code: number;
}

function p99(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? Number.NaN;
}

/** runOverloadPhase runs the phase for a burst of `burstS` seconds (plus 2 s before and 1 s after). */
export async function runOverloadPhase(
  burstS: number,
  signal: AbortSignal,
): Promise<OverloadResult> {
  let busy = 0;
  const waiting: (() => void)[] = [];
  const events: LimitEvent[] = [];
  const server = createMeshServer({
    logger: false,
    idempotency: false,
    concurrencyLimit: {
      // Short sample windows so that the 2 s before the burst teach the
      // limit the unloaded latency (the defaults want ~100 calls for that).
      adaptive: { algorithm: "gradient2", windowMs: 50, minSamples: 3 },
      onEvent: (e) => events.push(e),
    },
    routes: (router) =>
      router.service(OrderService, {
        async getOrder(req) {
          if (busy >= WORKERS) await new Promise<void>((r) => waiting.push(r));
          else busy++;
          try {
            await new Promise((r) => setTimeout(r, SERVICE_MS));
          } finally {
            const next = waiting.shift();
            if (next === undefined) busy--;
            else next();
          }
          return { order: { id: req.id, servedBy: "overload" } };
        },
      }),
  });
  const bound = await server.listen();
  const transport = createMeshTransport({
    target: bound.address,
    logger: false,
    // One server: shed calls are its answer, not an endpoint to eject.
    outlierDetection: false,
    circuitBreaker: false,
    retry: false,
  });
  const client = createClient(OrderService, transport);
  const calls: Call[] = [];
  const pending = new Set<Promise<void>>();
  let pushbackMs: string | null = null;
  let limitAtBurst = 20;
  let limitAfterBurst = 20;
  const limitNow = () => {
    const last = events.filter((e) => e.type === "limit-changed").at(-1);
    return last?.type === "limit-changed" ? last.to : 20;
  };
  const drive = async (phase: Call["phase"], rps: number, ms: number) => {
    const end = performance.now() + ms;
    let next = performance.now();
    while (performance.now() < end && !signal.aborted) {
      while (next <= performance.now()) {
        next += -Math.log(1 - Math.random()) * (1_000 / rps);
        const t0 = performance.now();
        const p = client
          .getOrder({ id: "o-1" }, { timeoutMs: CALL_TIMEOUT_MS })
          .then(
            () => 0,
            (e: unknown) => {
              const err = ConnectError.from(e);
              if (err.code === Code.ResourceExhausted) {
                pushbackMs ??= err.metadata.get("grpc-retry-pushback-ms");
              }
              return err.code as number;
            },
          )
          .then((code) => {
            calls.push({ phase, latencyMs: performance.now() - t0, code });
          });
        const tracked = p.finally(() => pending.delete(tracked));
        pending.add(tracked);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  try {
    await drive("calm", CALM_FACTOR * CAPACITY_RPS, 2_000);
    limitAtBurst = limitNow();
    const changesBefore = events.length;
    await drive("burst", BURST_FACTOR * CAPACITY_RPS, burstS * 1_000);
    limitAfterBurst = limitNow();
    const during = events
      .slice(changesBefore)
      .flatMap((e) => (e.type === "limit-changed" ? [e.to] : []));
    await drive("after", CALM_FACTOR * CAPACITY_RPS, 1_000);
    await Promise.all(pending);
    const burst = calls.filter((c) => c.phase === "burst");
    const ok = burst.filter((c) => c.code === 0);
    return {
      capacityRps: CAPACITY_RPS,
      burstS,
      offeredRps: burst.length / burstS,
      ok: ok.length,
      refused: burst.filter((c) => c.code === Code.ResourceExhausted).length,
      timedOut: burst.filter((c) => c.code === Code.DeadlineExceeded).length,
      otherErrors: burst.filter(
        (c) =>
          c.code !== 0 && c.code !== Code.ResourceExhausted && c.code !== Code.DeadlineExceeded,
      ).length,
      goodputRps: ok.length / burstS,
      calmP99Ms: p99(
        calls.filter((c) => c.phase === "calm" && c.code === 0).map((c) => c.latencyMs),
      ),
      burstP99Ms: p99(ok.map((c) => c.latencyMs)),
      limitBefore: limitAtBurst,
      limitLowest: Math.min(limitAtBurst, ...during),
      limitAfterBurst,
      limitChanges: events.filter((e) => e.type === "limit-changed").length,
      pushbackMs,
    };
  } finally {
    await transport.close();
    await server.close({ graceMs: 0 });
  }
}
