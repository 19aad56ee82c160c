import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  fullAfterMs,
  levelAt,
  type TokenBucketLimit,
  type TokenBucketState,
  takeToken,
  validateTokenBucketLimit,
} from "../../src/limit/token-bucket.js";

const TEN_PER_S: TokenBucketLimit = { ratePerSecond: 10, burst: 5 };

describe("takeToken", () => {
  it.each([
    // [state, now, cost, allowed, tokens after, retryAfterMs]
    ["new bucket starts full", undefined, 0, 1, true, 4, 0],
    ["takes the last token", { tokens: 1, updatedAt: 0 }, 0, 1, true, 0, 0],
    ["empty: waits one token's time (100 ms)", { tokens: 0, updatedAt: 0 }, 0, 1, false, 0, 100],
    ["half a token: waits the other half", { tokens: 0.5, updatedAt: 0 }, 0, 1, false, 0.5, 50],
    ["refills at the rate", { tokens: 0, updatedAt: 0 }, 250, 1, true, 1.5, 0],
    ["refills no higher than burst", { tokens: 0, updatedAt: 0 }, 60_000, 1, true, 4, 0],
    ["a clock going back refills nothing", { tokens: 0, updatedAt: 1_000 }, 500, 1, false, 0, 100],
    ["cost 3 with 2 tokens", { tokens: 2, updatedAt: 0 }, 0, 3, false, 2, 100],
    ["cost above burst never passes", undefined, 0, 6, false, 5, 1],
    ["wait rounds up to a whole ms", { tokens: 0.9999, updatedAt: 0 }, 0, 1, false, 0.9999, 1],
  ] as const)("%s", (_name, state, now, cost, allowed, tokens, retryAfterMs) => {
    const d = takeToken(TEN_PER_S, state as TokenBucketState | undefined, now, cost);
    expect(d.allowed).toBe(allowed);
    expect(d.state.tokens).toBeCloseTo(tokens, 9);
    expect(d.state.updatedAt).toBe(now);
    expect(d.retryAfterMs).toBe(retryAfterMs);
  });

  it("admits burst + rate * t calls over t ms when called without pause", () => {
    const limit: TokenBucketLimit = { ratePerSecond: 100, burst: 10 };
    let state: TokenBucketState | undefined;
    let admitted = 0;
    // One call every ms for 2 s: 10 at once, then 100/s.
    for (let now = 0; now < 2_000; now++) {
      const d = takeToken(limit, state, now);
      state = d.state;
      if (d.allowed) admitted++;
    }
    expect(admitted).toBe(10 + 199);
  });

  it("never admits more than burst + rate * elapsed, and a refused call's wait is enough (property)", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.1, max: 10_000, noNaN: true }),
        fc.integer({ min: 1, max: 100 }),
        fc.array(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 200 }),
        (ratePerSecond, burst, gaps) => {
          const limit = { ratePerSecond, burst };
          let state: TokenBucketState | undefined;
          let now = 0;
          let admitted = 0;
          for (const gap of gaps) {
            now += gap;
            const d = takeToken(limit, state, now);
            state = d.state;
            if (d.allowed) {
              admitted++;
            } else {
              // Waiting the pushback is always enough for the next token.
              expect(takeToken(limit, state, now + d.retryAfterMs).allowed).toBe(true);
            }
          }
          expect(admitted).toBeLessThanOrEqual(burst + (now * ratePerSecond) / 1000 + 1e-9);
        },
      ),
      { numRuns: Number(process.env.FC_RUNS ?? 100) },
    );
  });
});

describe("token bucket helpers", () => {
  it("levelAt and fullAfterMs", () => {
    expect(levelAt(TEN_PER_S, undefined, 0)).toBe(5);
    expect(levelAt(TEN_PER_S, { tokens: 1, updatedAt: 0 }, 200)).toBeCloseTo(3, 9);
    expect(fullAfterMs(TEN_PER_S)).toBe(500);
    expect(fullAfterMs({ ratePerSecond: 3, burst: 1 })).toBe(334);
  });

  it.each([
    [{ ratePerSecond: 0, burst: 1 }, /ratePerSecond 0 must be a number > 0/],
    [{ ratePerSecond: -1, burst: 1 }, /ratePerSecond -1/],
    [{ ratePerSecond: Number.NaN, burst: 1 }, /ratePerSecond NaN/],
    [{ ratePerSecond: Number.POSITIVE_INFINITY, burst: 1 }, /ratePerSecond Infinity/],
    [{ ratePerSecond: 1, burst: 0 }, /burst 0 must be an integer >= 1/],
    [{ ratePerSecond: 1, burst: 1.5 }, /burst 1.5/],
  ])("rejects %o", (limit, message) => {
    expect(() => validateTokenBucketLimit("limits", limit)).toThrow(RangeError);
    expect(() => validateTokenBucketLimit("limits", limit)).toThrow(message);
  });
});
