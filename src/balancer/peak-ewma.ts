import { stripUndefined } from "../strip-undefined.js";

/**
 * PeakEwma estimates one endpoint's load as linkerd and Finagle do:
 * `cost = rttEstimate * (pending + 1)`. The RTT estimate is a peak-sensitive
 * moving average: a slower sample replaces it at once (react to trouble
 * immediately), a faster one only pulls it down gradually (trust recovery
 * slowly). It is mutable per-endpoint state shared by successive pickers.
 */
export interface PeakEwma {
  /** pending is the number of calls started and not yet ended. */
  readonly pending: number;
  /** start counts a call as pending, from pick on. */
  start(): void;
  /** end stops counting a call as pending, whatever its outcome (cancelled calls too). */
  end(): void;
  /** observe folds an RTT sample measured at `now` into the estimate. */
  observe(rttMs: number, now: number): void;
  /** rttMs is the RTT estimate at `now`, after idle decay. */
  rttMs(now: number): number;
  /** cost is `rttMs(now) * (pending + 1)`; lower is better. */
  cost(now: number): number;
}

/**
 * PeakEwmaOptions configures createPeakEwma. Defaults (PEAK_EWMA_DEFAULTS):
 * decayMs 10_000, seedRttMs 30, seededAt the time of first use.
 */
export interface PeakEwmaOptions {
  /** decayMs is the time constant tau of the decay, > 0. */
  readonly decayMs?: number;
  /** seedRttMs is the initial estimate, >= 0. */
  readonly seedRttMs?: number;
  /** seededAt is the time the seed estimate was taken, from which it decays. */
  readonly seededAt?: number;
}

/** PEAK_EWMA_DEFAULTS are the defaults documented on PeakEwmaOptions (linkerd2-proxy's). */
export const PEAK_EWMA_DEFAULTS: Required<Omit<PeakEwmaOptions, "seededAt">> = Object.freeze({
  // tau = 10 s: a spike is forgotten (to 1/e) in ten seconds, long enough to
  // steer traffic away from a hiccup, short enough to come back after it.
  decayMs: 10_000,
  // 30 ms is a typical in-datacenter RPC; it is only a prior until a sample arrives.
  seedRttMs: 30,
});

/**
 * createPeakEwma builds a load estimator. The estimate, seed included, decays
 * toward zero while idle (`rtt * exp(-idle / decayMs)`), as linkerd's does,
 * so an endpoint that stopped getting traffic because it was once slow (or
 * was never tried) is tried again eventually instead of starving. P2C bounds
 * the herd this could cause: a near-free endpoint only wins the picks it is
 * drawn into. The seed is treated like a sample taken at `seededAt` (or at the
 * first call that passes a time), so a first sample lower than the seed pulls
 * the estimate down gradually, exactly as later ones do.
 */
export function createPeakEwma(options: PeakEwmaOptions = {}): PeakEwma {
  const { decayMs, seedRttMs } = { ...PEAK_EWMA_DEFAULTS, ...stripUndefined(options) };
  if (!(decayMs > 0) || !Number.isFinite(decayMs)) {
    throw new RangeError(`decayMs ${decayMs} must be a finite number > 0`);
  }
  if (!(seedRttMs >= 0) || !Number.isFinite(seedRttMs)) {
    throw new RangeError(`seedRttMs ${seedRttMs} must be a finite number >= 0`);
  }
  let estimate = seedRttMs;
  // NaN until the first call that passes a time, unless seededAt is given.
  let stampedAt = options.seededAt ?? Number.NaN;
  let pending = 0;

  const decayed = (now: number): number => {
    if (Number.isNaN(stampedAt)) stampedAt = now;
    const idle = now - stampedAt;
    return idle > 0 ? estimate * Math.exp(-idle / decayMs) : estimate;
  };

  return {
    get pending() {
      return pending;
    },
    start() {
      pending++;
    },
    end() {
      if (pending > 0) pending--;
    },
    observe(rttMs, now) {
      if (!(rttMs >= 0)) return;
      if (Number.isNaN(stampedAt)) stampedAt = now;
      if (rttMs > estimate) {
        estimate = rttMs;
      } else {
        const elapsed = Math.max(0, now - stampedAt);
        const w = Math.exp(-elapsed / decayMs);
        estimate = estimate * w + rttMs * (1 - w);
      }
      stampedAt = Math.max(stampedAt, now);
    },
    rttMs: decayed,
    cost(now) {
      return decayed(now) * (pending + 1);
    },
  };
}
