// Open-loop load for the overload suite: Poisson arrivals at a set rate,
// phase by phase, each call with its own deadline, so a slow server gets
// more calls in flight instead of fewer arrivals (a closed loop would slow
// down with the server and hide overload).

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { EchoService } from "../../../gen/test/v1/echo_pb.js";
import { CRITICALITY_HEADER, createMeshTransport } from "../../../src/index.js";

/** LoadPhase is one stretch of constant offered load. */
export interface LoadPhase {
  readonly name: string;
  /** ratePerS is the mean arrival rate. */
  readonly ratePerS: number;
  readonly durationMs: number;
  /** criticalShare is the fraction of calls sent `critical`; the rest are `sheddable`. Absent: no header. */
  readonly criticalShare?: number;
}

/** CallRecord is one call's outcome. */
export interface CallRecord {
  readonly phase: string;
  /** atMs is the call's start, epoch ms. */
  readonly atMs: number;
  readonly latencyMs: number;
  /** code is 0 for OK, else the gRPC code. */
  readonly code: number;
  readonly critical: boolean;
}

const epochMs = () => performance.timeOrigin + performance.now();

/** TICK_MS is how often due arrivals are fired (timers are not more precise under load anyway). */
const TICK_MS = 2;

/**
 * runOpenLoop drives `address` through `phases` and resolves with every
 * call once all have settled (each is bounded by `timeoutMs`).
 */
export async function runOpenLoop(
  address: string,
  phases: readonly LoadPhase[],
  timeoutMs: number,
  random: () => number = Math.random,
): Promise<{ records: CallRecord[]; starts: Record<string, number> }> {
  const starts: Record<string, number> = {};
  const transport = createMeshTransport({
    target: address,
    logger: false,
    // The server's own answers are measured: no retries, breakers or ejections on top.
    retry: false,
    circuitBreaker: false,
    outlierDetection: false,
    idempotencyKeys: false,
  });
  const echo = createClient(EchoService, transport);
  const records: CallRecord[] = [];
  const pending = new Set<Promise<void>>();
  const fire = (phase: LoadPhase) => {
    const critical = phase.criticalShare !== undefined && random() < phase.criticalShare;
    const headers =
      phase.criticalShare === undefined
        ? undefined
        : { [CRITICALITY_HEADER]: critical ? "critical" : "sheddable" };
    const atMs = epochMs();
    const t0 = performance.now();
    const p = echo
      .echo({}, { timeoutMs, ...(headers === undefined ? {} : { headers }) })
      .then(
        () => 0,
        (e: unknown) => ConnectError.from(e).code as number,
      )
      .then((code) => {
        records.push({
          phase: phase.name,
          atMs,
          latencyMs: performance.now() - t0,
          code,
          critical,
        });
      });
    const tracked = p.finally(() => pending.delete(tracked));
    pending.add(tracked);
  };
  try {
    for (const phase of phases) {
      const start = performance.now();
      starts[phase.name] = epochMs();
      const end = start + phase.durationMs;
      const meanGapMs = 1000 / phase.ratePerS;
      let next = start + -Math.log(1 - random()) * meanGapMs;
      while (performance.now() < end) {
        const now = performance.now();
        while (next <= now && next < end) {
          fire(phase);
          next += -Math.log(1 - random()) * meanGapMs;
        }
        await new Promise((r) => setTimeout(r, TICK_MS));
      }
    }
    await Promise.all(pending);
  } finally {
    await transport.close();
  }
  return { records, starts };
}

/** PhaseStats summarise a phase's calls. */
export interface PhaseStats {
  readonly phase: string;
  readonly offered_rps: number;
  readonly calls: number;
  readonly ok: number;
  readonly goodput_rps: number;
  readonly refused: number;
  readonly refused_rps: number;
  readonly timed_out: number;
  readonly other_errors: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
}

function pct(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? null;
}

/** phaseStats summarises the calls of `phase` that started in [fromMs, toMs) (epoch ms). */
export function phaseStats(
  records: readonly CallRecord[],
  phase: string,
  fromMs: number,
  toMs: number,
  filter: (r: CallRecord) => boolean = () => true,
): PhaseStats {
  const rs = records.filter(
    (r) => r.phase === phase && r.atMs >= fromMs && r.atMs < toMs && filter(r),
  );
  const seconds = (toMs - fromMs) / 1000;
  const ok = rs.filter((r) => r.code === 0);
  const lat = ok.map((r) => r.latencyMs).sort((a, b) => a - b);
  const refused = rs.filter((r) => r.code === Code.ResourceExhausted).length;
  const timedOut = rs.filter((r) => r.code === Code.DeadlineExceeded).length;
  return {
    phase,
    offered_rps: rs.length / seconds,
    calls: rs.length,
    ok: ok.length,
    goodput_rps: ok.length / seconds,
    refused,
    refused_rps: refused / seconds,
    timed_out: timedOut,
    other_errors: rs.length - ok.length - refused - timedOut,
    p50_ms: pct(lat, 50),
    p99_ms: pct(lat, 99),
  };
}

/** closedLoopRps measures the rate `concurrency` back-to-back callers get (a capacity probe). */
export async function closedLoopRps(
  address: string,
  concurrency: number,
  durationMs: number,
  warmupMs = 0,
): Promise<number> {
  const transport = createMeshTransport({
    target: address,
    logger: false,
    retry: false,
    circuitBreaker: false,
    outlierDetection: false,
    idempotencyKeys: false,
  });
  const echo = createClient(EchoService, transport);
  let ok = 0;
  const begin = performance.now() + warmupMs;
  const end = begin + durationMs;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          try {
            await echo.echo({}, { timeoutMs: 5_000 });
            const now = performance.now();
            if (now >= begin && now < end) ok++;
          } catch {
            // counted as not ok
          }
        }
      }),
    );
  } finally {
    await transport.close();
  }
  return ok / (durationMs / 1000);
}
