import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Admission,
  type CircuitBreakerOptions,
  type CircuitTransition,
  createCircuitBreaker,
} from "../../src/breaker/circuit-breaker.js";

const OK = { ok: true, latencyMs: 1 } as const;
const FAIL = { ok: false, code: Code.Unavailable, latencyMs: 1 } as const;
const CANCELED = { ok: false, code: Code.Canceled, latencyMs: 1 } as const;

function admitted(a: Admission): Extract<Admission, { admitted: true }> {
  if (!a.admitted) throw new Error(`expected admission, got ${JSON.stringify(a)}`);
  return a;
}

function breaker(options: CircuitBreakerOptions = {}) {
  const transitions: CircuitTransition[] = [];
  const b = createCircuitBreaker({ onTransition: (t) => transitions.push(t), ...options });
  const call = (outcome: typeof OK | typeof FAIL | typeof CANCELED, now: number) =>
    admitted(b.tryAcquire(now)).release(outcome, now);
  return { b, transitions, call };
}

/** trip opens a breaker configured with consecutiveFailures 1 at `now`. */
const tripOptions: CircuitBreakerOptions = { consecutiveFailures: 1, failureRateThreshold: 0 };

describe("circuit breaker", () => {
  describe("closed", () => {
    it("admits calls and opens on failure rate >= 0.5 after 20 calls (defaults)", () => {
      const { b, transitions, call } = breaker();
      // Failures first, then successes: never 10 in a row (the default
      // consecutive-failure trip), so only the rate can open it.
      for (let i = 0; i < 9; i++) call(FAIL, i);
      for (let i = 0; i < 10; i++) call(OK, 9 + i);
      expect(b.state(19).type).toBe("closed");
      call(FAIL, 19); // 10/20
      expect(b.state(19)).toEqual({ type: "open", until: 19 + 5_000, openCount: 1 });
      expect(transitions).toEqual([
        {
          from: "closed",
          to: "open",
          reason: "failure-rate",
          at: 19,
          state: { type: "open", until: 5_019, openCount: 1 },
        },
      ]);
    });

    it("does not trip on failures in a row by default (only the rate over the last 100 calls counts)", () => {
      const { b, transitions, call } = breaker();
      for (let i = 0; i < 30; i++) call(OK, i);
      // 29 failures after 30 successes: a burst from one fast-failing replica.
      for (let i = 0; i < 29; i++) call(FAIL, 30 + i);
      expect(b.state(59).type).toBe("closed");
      call(FAIL, 59); // 30 of 60 failed: the rate reaches 0.5
      expect(b.state(59).type).toBe("open");
      expect(transitions[0]).toMatchObject({ from: "closed", to: "open", reason: "failure-rate" });
    });

    it("does not open below minimumCalls however bad the rate", () => {
      const { b, call } = breaker({ minimumCalls: 5 });
      for (let i = 0; i < 4; i++) call(FAIL, i);
      expect(b.state(4).type).toBe("closed");
      call(FAIL, 4);
      expect(b.state(4).type).toBe("open");
    });

    it("opens on consecutive failures when enabled", () => {
      const { b, transitions, call } = breaker({ consecutiveFailures: 3, failureRateThreshold: 0 });
      call(FAIL, 0);
      call(FAIL, 0);
      call(OK, 0);
      call(FAIL, 0);
      call(FAIL, 0);
      expect(b.state(0).type).toBe("closed");
      call(FAIL, 0);
      expect(transitions.map((t) => t.reason)).toEqual(["consecutive-failures"]);
    });

    it("opens on slow-call rate only when slowCallMs is set", () => {
      const slow = { ok: true, latencyMs: 200 } as const;
      const off = createCircuitBreaker({ minimumCalls: 2 });
      for (let i = 0; i < 10; i++) admitted(off.tryAcquire(i)).release(slow, i);
      expect(off.state(10).type).toBe("closed");

      const transitions: CircuitTransition[] = [];
      const on = createCircuitBreaker({
        minimumCalls: 2,
        slowCallMs: 100,
        onTransition: (t) => transitions.push(t),
      });
      admitted(on.tryAcquire(0)).release({ ok: true, latencyMs: 100 }, 0); // slow means > 100
      admitted(on.tryAcquire(0)).release({ ok: true, latencyMs: 100 }, 0);
      admitted(on.tryAcquire(0)).release(slow, 0);
      expect(on.state(0).type).toBe("closed"); // 1/3 < 0.5
      admitted(on.tryAcquire(0)).release(slow, 0);
      expect(on.state(0).type).toBe("open"); // 2/4 >= 0.5
      expect(transitions.map((t) => t.reason)).toEqual(["slow-call-rate"]);
    });

    it("counts only failure codes as failures", () => {
      const { b, call } = breaker({ minimumCalls: 2 });
      const notFound = { ok: false, code: Code.NotFound, latencyMs: 1 } as const;
      for (let i = 0; i < 10; i++) admitted(b.tryAcquire(i)).release(notFound, i);
      call(OK, 10);
      expect(b.state(10).type).toBe("closed");
      expect(b.stats(10)).toEqual({ calls: 11, failures: 0, slowCalls: 0 });
    });

    it("ignores CANCELED outcomes", () => {
      const { b, call } = breaker(tripOptions);
      call(CANCELED, 0);
      expect(b.stats(0).calls).toBe(0);
      expect(b.state(0).type).toBe("closed");
    });

    it("ignores a second release of the same permit", () => {
      const { b } = breaker({ consecutiveFailures: 2, failureRateThreshold: 0 });
      const p = admitted(b.tryAcquire(0));
      p.release(FAIL, 0);
      p.release(FAIL, 0);
      expect(b.state(0).type).toBe("closed");
    });

    it("forgets failures that left the time window", () => {
      const { b, call } = breaker({
        minimumCalls: 2,
        window: { type: "time", windowMs: 10_000, buckets: 10 },
      });
      call(FAIL, 0);
      call(FAIL, 10_000);
      expect(b.state(10_000).type).toBe("closed");
    });
  });

  describe("open", () => {
    it("refuses calls with retryAtMs until the open time elapses", () => {
      const { b, call } = breaker(tripOptions);
      call(FAIL, 100);
      expect(b.tryAcquire(100)).toEqual({ admitted: false, state: "open", retryAtMs: 5_100 });
      expect(b.tryAcquire(5_099)).toEqual({ admitted: false, state: "open", retryAtMs: 5_100 });
      expect(b.tryAcquire(5_100).admitted).toBe(true);
    });

    it("refusal answers what tryAcquire would refuse with, without acquiring", () => {
      const { b, call } = breaker(tripOptions);
      expect(b.refusal(0)).toBeUndefined();
      call(FAIL, 100);
      expect(b.refusal(100)).toEqual({ admitted: false, state: "open", retryAtMs: 5_100 });
      expect(b.refusal(5_099)).toEqual(b.tryAcquire(5_099));
      // Elapsed: half-open with free probe slots admits, and asking takes no slot.
      expect(b.refusal(5_100)).toBeUndefined();
      expect(b.refusal(5_100)).toBeUndefined();
      expect(b.state(5_100)).toMatchObject({ type: "half-open", probesInFlight: 0 });
      for (let i = 0; i < 3; i++) admitted(b.tryAcquire(5_100));
      expect(b.refusal(5_100)).toEqual({
        admitted: false,
        state: "half-open",
        retryAtMs: undefined,
      });
    });

    it("ignores outcomes of calls admitted before it opened", () => {
      const { b, transitions, call } = breaker(tripOptions);
      const early = admitted(b.tryAcquire(0));
      call(FAIL, 0);
      early.release(FAIL, 1);
      expect(b.state(1)).toEqual({ type: "open", until: 5_000, openCount: 1 });
      expect(transitions).toHaveLength(1);
    });

    it("turns half-open lazily, when asked, with an event", () => {
      const { b, transitions, call } = breaker(tripOptions);
      call(FAIL, 0);
      expect(b.state(6_000)).toEqual({
        type: "half-open",
        probesInFlight: 0,
        successes: 0,
        openCount: 1,
      });
      expect(transitions.at(-1)).toMatchObject({
        from: "open",
        to: "half-open",
        reason: "open-elapsed",
        at: 6_000,
      });
    });
  });

  describe("half-open", () => {
    it("admits halfOpenProbes probes, then refuses without retryAtMs", () => {
      const { b, call } = breaker(tripOptions);
      call(FAIL, 0);
      const probes = [b.tryAcquire(5_000), b.tryAcquire(5_000), b.tryAcquire(5_000)];
      expect(probes.every((p) => p.admitted)).toBe(true);
      expect(b.tryAcquire(5_000)).toEqual({
        admitted: false,
        state: "half-open",
        retryAtMs: undefined,
      });
      expect(b.state(5_000)).toMatchObject({ type: "half-open", probesInFlight: 3, successes: 0 });
    });

    it("closes when all probes succeed and then starts from a clean window", () => {
      const { b, transitions, call } = breaker(tripOptions);
      call(FAIL, 0);
      const probes = [1, 2, 3].map(() => admitted(b.tryAcquire(5_000)));
      probes[0]!.release(OK, 5_001);
      probes[1]!.release(OK, 5_002);
      expect(b.state(5_002)).toMatchObject({ type: "half-open", probesInFlight: 1, successes: 2 });
      // A success does not free a probe slot: K probes total, not K at a time.
      expect(b.tryAcquire(5_002).admitted).toBe(false);
      probes[2]!.release(OK, 5_003);
      expect(b.state(5_003)).toEqual({ type: "closed" });
      expect(transitions.map((t) => `${t.from}>${t.to}:${t.reason}`)).toEqual([
        "closed>open:consecutive-failures",
        "open>half-open:open-elapsed",
        "half-open>closed:probes-succeeded",
      ]);
      expect(b.stats(5_003).calls).toBe(0);
    });

    it("re-opens on any probe failure for a longer time, and ignores the other probes", () => {
      const { b, transitions, call } = breaker(tripOptions);
      call(FAIL, 0);
      const [p1, p2] = [admitted(b.tryAcquire(5_000)), admitted(b.tryAcquire(5_000))];
      p1.release(FAIL, 5_010);
      expect(b.state(5_010)).toEqual({ type: "open", until: 5_010 + 10_000, openCount: 2 });
      p2.release(OK, 5_020);
      expect(b.state(5_020).type).toBe("open");
      expect(transitions.at(-1)?.reason).toBe("probe-failed");
    });

    it("treats a slow probe as failed when slowCallMs is set", () => {
      const { b, call } = breaker({ ...tripOptions, slowCallMs: 50 });
      call(FAIL, 0);
      admitted(b.tryAcquire(5_000)).release({ ok: true, latencyMs: 51 }, 5_051);
      expect(b.state(5_051).type).toBe("open");
    });

    it("frees the slot of a CANCELED probe without counting it", () => {
      const { b, call } = breaker(tripOptions);
      call(FAIL, 0);
      const p = admitted(b.tryAcquire(5_000));
      p.release(CANCELED, 5_001);
      expect(b.state(5_001)).toMatchObject({ type: "half-open", probesInFlight: 0, successes: 0 });
    });

    it("resets the open count after closing", () => {
      const { b, call } = breaker({ ...tripOptions, halfOpenProbes: 1 });
      call(FAIL, 0);
      call(OK, 5_000);
      expect(b.state(5_000).type).toBe("closed");
      call(FAIL, 6_000);
      expect(b.state(6_000)).toEqual({ type: "open", until: 11_000, openCount: 1 });
    });
  });

  it.each([
    [1, 5_000],
    [2, 10_000],
    [3, 20_000],
    [4, 40_000],
    [5, 60_000],
    [9, 60_000],
  ])("open #%i lasts %i ms (5 s doubling, capped at 60 s)", (openCount, expectedMs) => {
    const { b, call } = breaker({ ...tripOptions, halfOpenProbes: 1 });
    let now = 0;
    call(FAIL, now);
    for (let i = 1; i < openCount; i++) {
      const s = b.state(now);
      if (s.type !== "open") throw new Error("expected open");
      now = s.until;
      call(FAIL, now);
    }
    const s = b.state(now);
    expect(s).toEqual({ type: "open", until: now + expectedMs, openCount });
  });

  it("state stays a valid union under any sequence (property)", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("acquire" as const), dt: fc.integer({ min: 0, max: 3_000 }) }),
      fc.record({ kind: fc.constant("release" as const), ok: fc.boolean(), index: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const { b } = breaker({ minimumCalls: 3, consecutiveFailures: 2, halfOpenProbes: 2 });
        const held: Extract<Admission, { admitted: true }>[] = [];
        let now = 0;
        for (const o of ops) {
          if (o.kind === "acquire") {
            now += o.dt;
            const a = b.tryAcquire(now);
            if (a.admitted) held.push(a);
            else if (a.state === "open") expect(a.retryAtMs).toBeGreaterThan(now);
          } else if (held.length > 0) {
            const [p] = held.splice(o.index % held.length, 1);
            p!.release(o.ok ? OK : FAIL, now);
          }
          const s = b.state(now);
          if (s.type === "half-open") {
            expect(s.probesInFlight).toBeGreaterThanOrEqual(0);
            expect(s.probesInFlight + s.successes).toBeLessThanOrEqual(2);
          }
          if (s.type === "open") expect(s.until).toBeGreaterThan(now);
        }
      }),
    );
  });

  it.each<[CircuitBreakerOptions, string]>([
    [{ halfOpenProbes: 0 }, "halfOpenProbes 0 must be an integer >= 1"],
    [{ openMs: 0 }, "openMs 0 must be a finite number > 0"],
    [{ openMultiplier: 0.5 }, "openMultiplier 0.5 must be a finite number >= 1"],
    [{ maxOpenMs: 1_000 }, "maxOpenMs 1000 must be a finite number >= openMs 5000"],
    [{ slowCallMs: -1 }, "slowCallMs -1 must be a finite number >= 0"],
    [{ slowCallRateThreshold: 0 }, "slowCallRateThreshold 0 must be in (0, 1]"],
    [{ failureRateThreshold: 2 }, "failureRateThreshold 2 must be in [0, 1]"],
    [{ minimumCalls: 0 }, "minimumCalls 0 must be an integer >= 1"],
    [{ consecutiveFailures: -2 }, "consecutiveFailures -2 must be an integer >= 0"],
    [{ failureCodes: [99] }, "failure code 99 must be an integer in 1..16"],
  ])("rejects %o", (options, message) => {
    expect(() => createCircuitBreaker(options)).toThrow(new RangeError(message));
  });

  it("treats undefined options as defaults", () => {
    const b = createCircuitBreaker({ openMs: undefined, halfOpenProbes: undefined });
    expect(b.state(0)).toEqual({ type: "closed" });
  });
});
