import { describe, expect, it } from "vitest";
import { CONCURRENCY_LIMIT_DEFAULTS } from "../../src/limit/concurrency-limit.js";
import { type LimitSimOptions, simulateLimit } from "./overload-sim.js";

// The overload suite's two servers and phases (0.5x C for 11 s, 3x C for
// 10 s, 0.5x C for 5 s; 2 s deadlines) on a simulated clock, behind the real
// Gradient2 and criticality decisions: the acceptance of issue 17 without
// the host's noise. Seeds are fixed, so the figures are exact.
const PHASES = { unloadedMs: 11_000, overloadMs: 10_000, recoveryMs: 5_000, settleMs: 2_000 };
const SLEEP = { variant: "sleep", workers: 4, serviceMs: 200, ...PHASES } as const;
const CPU = { variant: "cpu", serviceMs: 20, ...PHASES } as const;
const SEEDS = [1, 2, 3];

function run(base: Omit<LimitSimOptions, "seed" | "adaptive">, adaptive = {}) {
  return SEEDS.map((seed) =>
    simulateLimit({ ...base, seed, adaptive: { algorithm: "gradient2", ...adaptive } }),
  );
}

describe("gradient2 defaults under a simulated 3x overload", () => {
  it.each([
    ["worker queue", SLEEP],
    ["CPU-bound", CPU],
  ] as const)(
    "%s: goodput >= 0.9x C, admitted p99 <= 2x unloaded, re-opens within 5 s",
    (_n, base) => {
      for (const r of run(base)) {
        expect(r.goodputXC).toBeGreaterThanOrEqual(0.9);
        expect(r.p99Ratio).toBeLessThanOrEqual(2);
        expect(r.reopenS).toBeLessThanOrEqual(5);
      }
    },
  );

  it("Netflix's symmetric smoothing (decreaseSmoothing 0.2) keeps the queue too long at the onset", () => {
    const slow = run(SLEEP, { decreaseSmoothing: 0.2 });
    const fast = run(SLEEP);
    const worst = (rs: typeof slow) => Math.max(...rs.map((r) => r.p99Ratio));
    expect(worst(slow)).toBeGreaterThan(2);
    expect(worst(fast)).toBeLessThan(worst(slow));
  });

  it("CPU-bound, 20% critical / 80% sheddable: critical calls succeed >= 99% with the default critical queue", () => {
    const mixed = (queueMs: number) =>
      SEEDS.map((seed) =>
        simulateLimit({
          ...CPU,
          seed,
          adaptive: { algorithm: "gradient2" },
          criticalShare: 0.2,
          queueMs,
        }),
      );
    for (const r of mixed(CONCURRENCY_LIMIT_DEFAULTS.criticalQueueMs)) {
      expect(r.criticalSuccess).toBeGreaterThanOrEqual(0.99);
      expect(r.sheddableShareOfRefusals).toBeGreaterThanOrEqual(0.9);
    }
    // Refused at once (the shares alone), a tenth of them were lost.
    expect(Math.min(...mixed(0).map((r) => r.criticalSuccess))).toBeLessThan(0.95);
  });
});
