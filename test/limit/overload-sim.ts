// A discrete-time simulation of the overload suite's two servers (a FIFO
// worker queue with a fixed service time; a processor-shared CPU) behind the
// real adaptive limit and criticality decisions, on a simulated clock: the
// limit's behaviour alone, without this machine's CPU noise. Same phases as
// the suite: 0.5x C, 3x C, 0.5x C, Poisson arrivals, 2 s deadlines.

import {
  type AdaptiveConcurrencyOptions,
  createAdaptiveLimit,
} from "../../src/limit/adaptive-limit.js";
import {
  admitsCriticality,
  type Criticality,
  type CriticalityShares,
  validateCriticalityShares,
} from "../../src/limit/criticality.js";

/** LimitSimOptions describes one simulated run. */
export interface LimitSimOptions {
  readonly variant: "sleep" | "cpu";
  /** sleep: workers and service time; cpu: CPU ms per call (one core shared by every call in flight). */
  readonly workers?: number;
  readonly serviceMs: number;
  readonly adaptive: AdaptiveConcurrencyOptions;
  readonly criticality?: CriticalityShares;
  /** criticalShare of calls are `critical`, the rest `sheddable`; absent: every call `default`. */
  readonly criticalShare?: number;
  readonly unloadedMs: number;
  readonly overloadMs: number;
  readonly recoveryMs: number;
  readonly settleMs: number;
  readonly seed: number;
  /** queueMs: critical calls that find no room wait up to this long for a slot (0: refused at once). */
  readonly queueMs?: number;
}

/** LimitSimResult is what the suite reports, from the simulation. */
export interface LimitSimResult {
  readonly capacity: number;
  readonly goodputXC: number;
  readonly unloadedP99: number;
  readonly overloadP99: number;
  readonly p99Ratio: number;
  readonly criticalSuccess: number;
  readonly sheddableShareOfRefusals: number;
  readonly reopenS: number;
  readonly limitEndOf3x: number;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

interface Call {
  readonly startMs: number;
  readonly phase: number;
  readonly criticality: Criticality;
  readonly inFlightAtStart: number;
  remainingMs: number;
  serving: boolean;
}

interface Done {
  readonly startMs: number;
  readonly phase: number;
  readonly criticality: Criticality;
  readonly latencyMs: number;
  readonly outcome: "ok" | "refused" | "timeout";
}

function p99(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] ?? Number.NaN;
}

/** simulateLimit runs the suite's phases against the simulated server with 1 ms steps. */
export function simulateLimit(o: LimitSimOptions): LimitSimResult {
  const random = seeded(o.seed);
  const workers = o.workers ?? 1;
  const capacity = o.variant === "sleep" ? (workers * 1000) / o.serviceMs : 1000 / o.serviceMs;
  const limit = createAdaptiveLimit(o.adaptive);
  const shares = validateCriticalityShares(o.criticality);
  let state = limit.initial();
  const phases = [
    { rate: 0.5 * capacity, ms: o.unloadedMs },
    { rate: 3 * capacity, ms: o.overloadMs },
    { rate: 0.5 * capacity, ms: o.recoveryMs },
  ];
  const inFlight: Call[] = [];
  const waiting: { startMs: number; phase: number; criticality: Criticality }[] = [];
  const queueMs = o.queueMs ?? 0;
  const done: Done[] = [];
  let t = 0;
  const phaseStart: number[] = [];
  let limitEndOf3x = 0;
  const finish = (c: Call, outcome: "ok" | "timeout") => {
    inFlight.splice(inFlight.indexOf(c), 1);
    const rtt = t - c.startMs;
    done.push({
      startMs: c.startMs,
      phase: c.phase,
      criticality: c.criticality,
      latencyMs: rtt + 1,
      outcome,
    });
    state = limit.onSample(state, {
      nowMs: t,
      rttMs: rtt,
      inFlight: c.inFlightAtStart,
      didDrop: outcome === "timeout",
    });
  };
  for (let p = 0; p < phases.length; p++) {
    const ph = phases[p] as { rate: number; ms: number };
    phaseStart.push(t);
    const end = t + ph.ms;
    let next = t + -Math.log(1 - random()) * (1000 / ph.rate);
    for (; t < end; t++) {
      // Arrivals due in this millisecond.
      while (next < t + 1) {
        const criticality: Criticality =
          o.criticalShare === undefined
            ? "default"
            : random() < o.criticalShare
              ? "critical"
              : "sheddable";
        if (admitsCriticality(shares, criticality, inFlight.length, limit.limitOf(state))) {
          inFlight.push({
            startMs: t,
            phase: p,
            criticality,
            inFlightAtStart: inFlight.length + 1,
            remainingMs: o.serviceMs,
            serving: false,
          });
        } else if (queueMs > 0 && criticality === "critical") {
          waiting.push({ startMs: t, phase: p, criticality });
        } else {
          done.push({ startMs: t, phase: p, criticality, latencyMs: 1, outcome: "refused" });
        }
        next += -Math.log(1 - random()) * (1000 / ph.rate);
      }
      // Serve one millisecond.
      if (o.variant === "sleep") {
        let busy = inFlight.filter((c) => c.serving).length;
        for (const c of inFlight) {
          if (busy >= workers) break;
          if (!c.serving) {
            c.serving = true;
            busy++;
          }
        }
        for (const c of inFlight) if (c.serving) c.remainingMs -= 1;
      } else if (inFlight.length > 0) {
        const share = 1 / inFlight.length;
        for (const c of inFlight) c.remainingMs -= share;
      }
      for (const c of [...inFlight]) {
        if (c.remainingMs <= 1e-9) finish(c, "ok");
        else if (t + 1 - c.startMs >= 2000) finish(c, "timeout");
      }
      while (waiting.length > 0) {
        const w = waiting[0] as { startMs: number; phase: number; criticality: Criticality };
        if (t + 1 - w.startMs >= queueMs) {
          waiting.shift();
          done.push({ ...w, latencyMs: queueMs, outcome: "refused" });
          continue;
        }
        if (!admitsCriticality(shares, w.criticality, inFlight.length, limit.limitOf(state))) break;
        waiting.shift();
        inFlight.push({
          ...w,
          inFlightAtStart: inFlight.length + 1,
          remainingMs: o.serviceMs,
          serving: false,
        });
      }
      if (p === 1) limitEndOf3x = limit.limitOf(state);
    }
  }
  const [u0, o0, r0] = phaseStart as [number, number, number];
  const unloaded = done.filter(
    (d) => d.phase === 0 && d.startMs >= u0 + 1000 && d.outcome === "ok",
  );
  const over = done.filter((d) => d.phase === 1 && d.startMs >= o0 + o.settleMs);
  const overOk = over.filter((d) => d.outcome === "ok");
  const crit = over.filter((d) => d.criticality === "critical");
  const refused = over.filter((d) => d.outcome === "refused");
  const lastRefusedInRecovery = Math.max(
    r0,
    ...done.filter((d) => d.phase === 2 && d.outcome === "refused").map((d) => d.startMs),
  );
  const up99 = p99(unloaded.map((d) => d.latencyMs));
  const op99 = p99(overOk.map((d) => d.latencyMs));
  return {
    capacity,
    goodputXC: overOk.length / ((o.overloadMs - o.settleMs) / 1000) / capacity,
    unloadedP99: up99,
    overloadP99: op99,
    p99Ratio: op99 / up99,
    criticalSuccess: crit.filter((d) => d.outcome === "ok").length / Math.max(1, crit.length),
    sheddableShareOfRefusals:
      refused.filter((d) => d.criticality === "sheddable").length / Math.max(1, refused.length),
    reopenS: (lastRefusedInRecovery - r0) / 1000,
    limitEndOf3x,
  };
}
