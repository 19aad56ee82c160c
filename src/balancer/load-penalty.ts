/** LoadPenaltyOptions configures createLoadPenalty (the balancer's `loadPenalty` option). */
export interface LoadPenaltyOptions {
  /**
   * maxPenaltyMs caps how long one answer may penalise an endpoint, whatever
   * pushback it asked for; default 10_000.
   */
  readonly maxPenaltyMs?: number;
  /**
   * factor multiplies a penalised endpoint's p2c cost; default 1_000: it
   * loses every draw against an endpoint that is not penalised unless that
   * one is three orders of magnitude busier, and among penalised endpoints
   * the usual cost decides.
   */
  readonly factor?: number;
}

/** LOAD_PENALTY_DEFAULTS are the defaults of LoadPenaltyOptions. */
export const LOAD_PENALTY_DEFAULTS = Object.freeze({
  // Longer than any pushback a limiter asks for in practice (tens to hundreds
  // of ms), short enough that a buggy or hostile pushback cannot keep a
  // replica idle for long.
  maxPenaltyMs: 10_000,
  factor: 1_000,
});

/**
 * LoadPenalty remembers which endpoints shed load (answered RESOURCE_EXHAUSTED
 * with `grpc-retry-pushback-ms`) and until when, Linkerd-style load biasing:
 * the balancer sends such an endpoint fewer calls for the time it asked for,
 * so shed load goes to replicas with room instead of back into the same one.
 * Time is an input: every method takes `now`.
 */
export interface LoadPenalty {
  /** record penalises `address` for `pushbackMs` (capped) from `now`; a longer running penalty is kept. */
  record(address: string, pushbackMs: number, now: number): void;
  /** factor is the cost multiplier of `address` at `now`: 1, or the penalty factor while penalised. */
  factor(address: string, now: number): number;
  /** until is when the penalty of `address` ends, or undefined when it has none at `now`. */
  until(address: string, now: number): number | undefined;
  /** forget drops the state of endpoints not in `addresses` (called when the ready set changes). */
  retain(addresses: ReadonlySet<string>): void;
}

/** NO_LOAD_PENALTY never penalises (the `loadPenalty: false` setting). */
export const NO_LOAD_PENALTY: LoadPenalty = Object.freeze({
  record() {},
  factor: () => 1,
  until: () => undefined,
  retain() {},
});

/** createLoadPenalty builds a LoadPenalty; options are validated here (RangeError). */
export function createLoadPenalty(options: LoadPenaltyOptions = {}): LoadPenalty {
  const maxPenaltyMs = options.maxPenaltyMs ?? LOAD_PENALTY_DEFAULTS.maxPenaltyMs;
  const factor = options.factor ?? LOAD_PENALTY_DEFAULTS.factor;
  if (!(typeof maxPenaltyMs === "number" && Number.isFinite(maxPenaltyMs) && maxPenaltyMs >= 0)) {
    throw new RangeError(`loadPenalty.maxPenaltyMs ${String(maxPenaltyMs)} must be a number >= 0`);
  }
  if (!(typeof factor === "number" && Number.isFinite(factor) && factor >= 1)) {
    throw new RangeError(`loadPenalty.factor ${String(factor)} must be a number >= 1`);
  }
  const untilByAddress = new Map<string, number>();
  const until = (address: string, now: number): number | undefined => {
    const end = untilByAddress.get(address);
    if (end === undefined) return undefined;
    if (end <= now) {
      untilByAddress.delete(address);
      return undefined;
    }
    return end;
  };
  return {
    record(address, pushbackMs, now) {
      if (!(pushbackMs > 0)) return;
      const end = now + Math.min(pushbackMs, maxPenaltyMs);
      const current = untilByAddress.get(address);
      if (current === undefined || current < end) untilByAddress.set(address, end);
    },
    factor: (address, now) =>
      untilByAddress.size === 0 || until(address, now) === undefined ? 1 : factor,
    until,
    retain(addresses) {
      for (const address of untilByAddress.keys()) {
        if (!addresses.has(address)) untilByAddress.delete(address);
      }
    },
  };
}
