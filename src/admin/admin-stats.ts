import type { TappedCall } from "../call/tapped-call.js";

/** AdminStatsOptions size what the admin server remembers. */
export interface AdminStatsOptions {
  /** windowMs is the window of calls/s, success % and p50/p99 per method; default 10_000. */
  readonly windowMs?: number;
  /** historySeconds is how many one-second points the charts keep; default 120. */
  readonly historySeconds?: number;
  /** tapSize is how many finished calls the tap keeps; default 200. */
  readonly tapSize?: number;
  /** timelineSize is how many breaker, ejection and registration changes the timeline keeps; default 200. */
  readonly timelineSize?: number;
}

/** ADMIN_STATS_DEFAULTS are the defaults documented on AdminStatsOptions. */
export const ADMIN_STATS_DEFAULTS: Required<AdminStatsOptions> = Object.freeze({
  windowMs: 10_000,
  historySeconds: 120,
  tapSize: 200,
  timelineSize: 200,
});

// Latency samples kept per method: p99 over 2_048 samples is within a few
// samples of the true one, and sorting them each second costs well under 1 ms.
const SAMPLES_PER_METHOD = 2_048;

/** MethodStats is one method's row in the dashboard, over the last `windowMs`. */
export interface MethodStats {
  readonly side: TappedCall["side"];
  readonly method: string;
  readonly callsPerSec: number;
  /** successPercent is the share of OK calls, or null with no calls in the window. */
  readonly successPercent: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** calls and failures count since the admin server started. */
  readonly calls: number;
  readonly failures: number;
}

/** SecondPoint is one second of history for the charts. */
export interface SecondPoint {
  /** at is the second's start (epoch ms). */
  readonly at: number;
  readonly calls: number;
  readonly ok: number;
  readonly retries: number;
  readonly budgetExhausted: number;
  /** endpoints counts client calls by the endpoint that served them. */
  readonly endpoints: Readonly<Record<string, number>>;
}

/** TimelineEntry is a state change: a breaker transition, an ejection, a restore, a registration. */
export interface TimelineEntry {
  /** at is when the admin server saw it (epoch ms). */
  readonly at: number;
  /** kind: `breaker`, `ejected`, `restored`, or a registry event's type (`lease-lost`...). */
  readonly kind: string;
  /** subject is what it happened to: a breaker key or an endpoint address. */
  readonly subject: string;
  /** detail says how, e.g. `closed → open (failure-rate)`. */
  readonly detail: string;
}

/** BreakerView is a breaker's last known state from its events. */
export interface BreakerView {
  readonly key: string;
  readonly state: string;
  readonly since: number;
  readonly reason: string;
}

/** EjectionView is an endpoint ejected now, from the outlier events. */
export interface EjectionView {
  readonly target: string;
  readonly address: string;
  readonly reason: string;
  readonly since: number;
  readonly ejectionCount: number;
}

/** RetryTotals count the retry events since the admin server started. */
export interface RetryTotals {
  readonly retries: number;
  readonly hedges: number;
  readonly giveUps: number;
  readonly budgetExhausted: number;
}

/** AdminStatsView is the JSON the dashboard draws. */
export interface AdminStatsView {
  readonly at: number;
  readonly windowMs: number;
  readonly methods: readonly MethodStats[];
  readonly history: readonly SecondPoint[];
  readonly timeline: readonly TimelineEntry[];
  readonly breakers: readonly BreakerView[];
  readonly ejections: readonly EjectionView[];
  readonly retries: RetryTotals;
}

/**
 * AdminStats folds tapped calls and mesh events into what the dashboard
 * shows. It is pure bookkeeping: time is passed in (epoch ms) and memory is
 * bounded by the options whatever the traffic.
 */
export interface AdminStats {
  /** recordCall counts a finished call and keeps it in the tap. */
  recordCall(call: TappedCall, now: number): void;
  /** recordEvent notes a transport or server event (breaker, outlier, retry...). */
  recordEvent(event: unknown, now: number): void;
  /** view renders the state at `now`. */
  view(now: number): AdminStatsView;
  /** tail returns the last `limit` tapped calls, oldest first. */
  tail(limit?: number): readonly TappedCall[];
  /** callsSince returns the calls recorded after sequence number `seq`, and the latest one. */
  callsSince(seq: number): { readonly calls: readonly TappedCall[]; readonly seq: number };
}

interface MethodAcc {
  readonly side: TappedCall["side"];
  readonly method: string;
  calls: number;
  failures: number;
  // Ring of [at, durationMs, ok ? 1 : 0].
  readonly at: Float64Array;
  readonly ms: Float64Array;
  readonly ok: Uint8Array;
  next: number;
  size: number;
}

interface SecondAcc {
  at: number;
  calls: number;
  ok: number;
  retries: number;
  budgetExhausted: number;
  endpoints: Record<string, number>;
}

/** createAdminStats validates the options and builds empty stats. */
export function createAdminStats(options: AdminStatsOptions = {}): AdminStats {
  const o = { ...ADMIN_STATS_DEFAULTS, ...options };
  positiveInteger("windowMs", o.windowMs, 1_000, 3_600_000);
  positiveInteger("historySeconds", o.historySeconds, 1, 3_600);
  positiveInteger("tapSize", o.tapSize, 1, 10_000);
  positiveInteger("timelineSize", o.timelineSize, 1, 10_000);

  const methods = new Map<string, MethodAcc>();
  const seconds: SecondAcc[] = [];
  const tap: TappedCall[] = [];
  let seq = 0;
  const timeline: TimelineEntry[] = [];
  const breakers = new Map<string, BreakerView>();
  const ejections = new Map<string, EjectionView>();
  const retries = { retries: 0, hedges: 0, giveUps: 0, budgetExhausted: 0 };

  const second = (now: number): SecondAcc => {
    const at = Math.floor(now / 1000) * 1000;
    const last = seconds[seconds.length - 1];
    if (last !== undefined && last.at >= at) return last;
    const s: SecondAcc = { at, calls: 0, ok: 0, retries: 0, budgetExhausted: 0, endpoints: {} };
    seconds.push(s);
    while (seconds.length > o.historySeconds) seconds.shift();
    return s;
  };
  const note = (at: number, kind: string, subject: string, detail: string) => {
    timeline.push(Object.freeze({ at, kind, subject, detail }));
    if (timeline.length > o.timelineSize) timeline.shift();
  };

  return {
    recordCall(call, now) {
      const ok = call.code === "OK";
      const key = `${call.side} ${call.method}`;
      let m = methods.get(key);
      if (m === undefined) {
        m = {
          side: call.side,
          method: call.method,
          calls: 0,
          failures: 0,
          at: new Float64Array(SAMPLES_PER_METHOD),
          ms: new Float64Array(SAMPLES_PER_METHOD),
          ok: new Uint8Array(SAMPLES_PER_METHOD),
          next: 0,
          size: 0,
        };
        methods.set(key, m);
      }
      m.calls++;
      if (!ok) m.failures++;
      m.at[m.next] = now;
      m.ms[m.next] = call.durationMs;
      m.ok[m.next] = ok ? 1 : 0;
      m.next = (m.next + 1) % SAMPLES_PER_METHOD;
      m.size = Math.min(m.size + 1, SAMPLES_PER_METHOD);
      // Charts count the client's logical calls: a server's calls would count twice in one process.
      if (call.side === "client") {
        const s = second(now);
        s.calls++;
        if (ok) s.ok++;
        if (call.endpoint !== undefined) {
          s.endpoints[call.endpoint] = (s.endpoints[call.endpoint] ?? 0) + 1;
        }
      }
      seq++;
      tap.push(call);
      if (tap.length > o.tapSize) tap.shift();
    },
    recordEvent(event, now) {
      if (typeof event !== "object" || event === null) return;
      const e = event as Record<string, unknown>;
      const type = String(e.type);
      if (type === "breaker") {
        const key = String(e.key);
        const reason = String(e.reason);
        breakers.set(key, Object.freeze({ key, state: String(e.to), since: now, reason }));
        note(now, "breaker", key, `${String(e.from)} → ${String(e.to)} (${reason})`);
      } else if (e.source === "outlier" && type === "ejected") {
        const target = String(e.target);
        const address = String(e.address);
        const ejectionCount = typeof e.ejectionCount === "number" ? e.ejectionCount : 1;
        ejections.set(
          `${target} ${address}`,
          Object.freeze({ target, address, reason: String(e.reason), since: now, ejectionCount }),
        );
        note(
          now,
          "ejected",
          address,
          `${String(e.reason)}, ejection #${ejectionCount} for ${Number(e.ejectionMs)} ms`,
        );
      } else if (e.source === "outlier" && type === "restored") {
        const address = String(e.address);
        ejections.delete(`${String(e.target)} ${address}`);
        note(now, "restored", address, "back in rotation");
      } else if (type === "retry") {
        retries.retries++;
        second(now).retries++;
      } else if (type === "hedge") {
        retries.hedges++;
      } else if (type === "give-up") {
        // Counted, not listed: while a breaker is open every call gives up,
        // and the timeline is for state changes.
        retries.giveUps++;
      } else if (type === "budget-exhausted") {
        retries.budgetExhausted++;
        second(now).budgetExhausted++;
      } else if (
        type === "lease-lost" ||
        type === "re-registered" ||
        type === "registered" ||
        type === "deregistered"
      ) {
        const r = e.registration as { address?: unknown; service?: unknown } | undefined;
        note(now, type, String(r?.address ?? ""), String(r?.service ?? ""));
      }
    },
    view(now) {
      const from = now - o.windowMs;
      const rows: MethodStats[] = [];
      for (const m of methods.values()) {
        const recent: number[] = [];
        let okCount = 0;
        for (let i = 0; i < m.size; i++) {
          if ((m.at[i] ?? 0) > from) {
            recent.push(m.ms[i] ?? 0);
            okCount += m.ok[i] ?? 0;
          }
        }
        recent.sort((a, b) => a - b);
        const n = recent.length;
        rows.push(
          Object.freeze({
            side: m.side,
            method: m.method,
            callsPerSec: round((n / o.windowMs) * 1000),
            successPercent: n === 0 ? null : round((okCount / n) * 100),
            p50Ms: quantile(recent, 0.5),
            p99Ms: quantile(recent, 0.99),
            calls: m.calls,
            failures: m.failures,
          }),
        );
      }
      rows.sort((a, b) => (a.side + a.method).localeCompare(b.side + b.method));
      return Object.freeze({
        at: now,
        windowMs: o.windowMs,
        methods: Object.freeze(rows),
        history: Object.freeze(
          seconds.map((s) => Object.freeze({ ...s, endpoints: Object.freeze({ ...s.endpoints }) })),
        ),
        timeline: Object.freeze([...timeline]),
        breakers: Object.freeze([...breakers.values()]),
        ejections: Object.freeze([...ejections.values()]),
        retries: Object.freeze({ ...retries }),
      });
    },
    tail(limit = o.tapSize) {
      return Object.freeze(tap.slice(Math.max(0, tap.length - limit)));
    },
    callsSince(since) {
      const fresh = Math.min(seq - since, tap.length);
      return {
        calls: Object.freeze(fresh <= 0 ? [] : tap.slice(tap.length - fresh)),
        seq,
      };
    },
  };
}

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1] ?? null;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function positiveInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} ${value} must be an integer in ${min}..${max}`);
  }
}
