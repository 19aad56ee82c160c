// Suite "breakers": what 10k circuit breakers cost. One process: a breaker
// registry gets one breaker per key (target + method), each fed a few
// outcomes, and the heap is measured around it with forced GCs; then the cost
// of one admission + release on a closed breaker and of a refusal on an open
// one. In-process and CPU-only, so the figures are steadier than the network
// suites'.

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createBreakerRegistry } from "../../src/breaker/breaker-registry.js";
import { goal, type LabResult, type LabSuite, mdTable, r } from "../lib/lab/lab.js";

function forcedGc(): () => void {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  return () => {
    gc();
    gc();
  };
}

function measure(breakers: number): Record<string, number> {
  const gc = forcedGc();
  let now = 0;
  gc();
  const before = process.memoryUsage().heapUsed;
  const registry = createBreakerRegistry();
  for (let i = 0; i < breakers; i++) {
    const key = `static:///10.0.0.1:5000 pkg.Service/Method${i}`;
    for (let j = 0; j < 5; j++) {
      const a = registry.tryAcquire(key, now);
      if (a.admitted) a.release({ ok: j !== 4, code: j === 4 ? 14 : undefined, latencyMs: 2 }, now);
      now += 1;
    }
  }
  gc();
  const after = process.memoryUsage().heapUsed;
  const bytesPer = (after - before) / breakers;

  // Hot path: admit + release on a closed breaker.
  const hotKey = "static:///10.0.0.1:5000 pkg.Service/Hot";
  const n = 200_000;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const a = registry.tryAcquire(hotKey, now);
    if (a.admitted) a.release({ ok: true, latencyMs: 1 }, now);
    now += 0.01;
  }
  const closedNs = Number(process.hrtime.bigint() - t0) / n;

  // Open breaker: a refusal (the fail-fast decision, before any error object).
  const openKey = "static:///10.0.0.1:5000 pkg.Service/Down";
  for (let i = 0; i < 30; i++) {
    const a = registry.tryAcquire(openKey, now);
    if (a.admitted) a.release({ ok: false, code: 14, latencyMs: 1 }, now);
  }
  t0 = process.hrtime.bigint();
  let refused = 0;
  for (let i = 0; i < n; i++) {
    if (!registry.tryAcquire(openKey, now).admitted) refused++;
  }
  const openNs = Number(process.hrtime.bigint() - t0) / n;
  if (refused !== n) throw new Error(`open breaker admitted ${n - refused} of ${n} calls`);
  // Keep the registry alive until measured.
  if (registry.size < breakers) throw new Error(`registry holds ${registry.size} breakers`);
  return {
    breakers,
    heap_bytes_per_breaker: bytesPer,
    heap_mb_total: (after - before) / 1024 / 1024,
    closed_admit_release_ns: closedNs,
    open_refusal_ns: openNs,
  };
}

export const breakers: LabSuite = {
  name: "breakers",
  title: "Circuit breakers: memory and decision cost",
  lab: true,
  notes: [
    "- One process, no network: a breaker registry with one breaker per key, each fed 5 outcomes (one failure), heap measured around it with forced GCs.",
    "- closed admit + release: tryAcquire and release on a closed breaker (the per-attempt cost on the hot path); open refusal: tryAcquire on an open breaker.",
  ],
  timing: {
    full: { warmupMs: 0, durationMs: 0, reps: 1 },
    quick: { warmupMs: 0, durationMs: 0, reps: 1 },
  },
  configs: () => [],
  budgetMs: () => 60_000,
  async run(ctx): Promise<LabResult> {
    const count = ctx.quick ? 1_000 : 10_000;
    const row = measure(count);
    ctx.log(`breakers: ${count} breakers, ${r(row.heap_bytes_per_breaker, 0)} B each`);
    const markdown = mdTable(
      ["breakers", "heap per breaker", "heap total", "closed admit + release", "open refusal"],
      [
        [
          String(row.breakers),
          `${r(row.heap_bytes_per_breaker, 0)} B`,
          `${r(row.heap_mb_total, 2)} MB`,
          `${r(row.closed_admit_release_ns, 0)} ns`,
          `${r(row.open_refusal_ns, 0)} ns`,
        ],
      ],
    );
    return {
      method: { breakers: count, outcomes_per_breaker: 5 },
      results: { rows: [row] },
      goals: [
        goal(
          "10k breakers are cheap: heap per breaker",
          "≤ 2 KiB",
          row.heap_bytes_per_breaker,
          (v) => v <= 2048,
          (v) => `${r(v, 0)} B`,
        ),
        goal(
          "open-breaker refusal",
          "≤ 1 ms",
          (row.open_refusal_ns ?? 0) / 1e6,
          (v) => v <= 1,
          (v) => `${r(v * 1e6, 0)} ns`,
        ),
      ],
      markdown,
      failures: [],
    };
  },
};
