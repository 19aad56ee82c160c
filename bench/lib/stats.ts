// Small statistics helpers: a growable sample buffer with nearest-rank
// percentiles, and median / min / max over a handful of repetitions.

/** Samples collects float samples (latencies in ms) in a growable typed array. */
export class Samples {
  private buf: Float64Array;
  private n = 0;

  constructor(initialCapacity = 16_384) {
    this.buf = new Float64Array(Math.max(16, initialCapacity));
  }

  get count(): number {
    return this.n;
  }

  add(v: number): void {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }

  clear(): void {
    this.n = 0;
  }

  /** sorted returns a sorted copy of the samples. */
  sorted(): Float64Array {
    return this.buf.slice(0, this.n).sort();
  }

  /** summary returns the usual percentiles, in the samples' unit. */
  summary(): LatencySummary {
    return summarize(this.sorted());
  }
}

/** LatencySummary holds percentiles of one run, in ms. */
export interface LatencySummary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** percentile is the nearest-rank percentile (0 < p <= 100) of an ascending array; NaN if empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) {
    return Number.NaN;
  }
  const rank = Math.ceil((p / 100) * n);
  const i = Math.min(n - 1, Math.max(0, rank - 1));
  return sorted[i] as number;
}

/** summarize computes a LatencySummary from an ascending array. */
export function summarize(sorted: ArrayLike<number>): LatencySummary {
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += sorted[i] as number;
  }
  return {
    count: n,
    min: n > 0 ? (sorted[0] as number) : Number.NaN,
    mean: n > 0 ? sum / n : Number.NaN,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    max: n > 0 ? (sorted[n - 1] as number) : Number.NaN,
  };
}

/** median of a list (mean of the middle two for even lengths); NaN if empty. */
export function median(values: readonly number[]): number {
  const s = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) {
    return Number.NaN;
  }
  const mid = n >> 1;
  return n % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

export function min(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : Math.min(...values);
}

export function max(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : Math.max(...values);
}

/** round to `digits` decimals, keeping NaN as null for JSON. */
export function round(v: number, digits = 1): number | null {
  if (!Number.isFinite(v)) {
    return null;
  }
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
