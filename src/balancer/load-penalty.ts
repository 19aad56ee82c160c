/** LoadPenaltyOptions configures createLoadPenalty (the balancer's `loadPenalty` option). */
export interface LoadPenaltyOptions {
  /**
   * maxPenaltyMs caps how long one shed answer counts, whatever pushback it
   * asked for; default 10_000.
   */
  readonly maxPenaltyMs?: number;
}

/** LOAD_PENALTY_DEFAULTS are the defaults of LoadPenaltyOptions. */
export const LOAD_PENALTY_DEFAULTS = Object.freeze({
  // Longer than any pushback a limiter asks for in practice (tens to hundreds
  // of ms), short enough that a buggy or hostile pushback cannot keep a
  // replica idle for long.
  maxPenaltyMs: 10_000,
});

// Shed answers remembered per endpoint: bounds memory against a flood; past
// it the earliest-ending are forgotten (the endpoint is already far costlier
// than any other by then).
const MAX_TRACKED = 1_000;

/**
 * LoadPenalty is load-aware balancing after Linkerd: an endpoint that shed a
 * call (RESOURCE_EXHAUSTED with `grpc-retry-pushback-ms`) counts that answer
 * as one more call in flight for the pushback time. p2c-ewma's cost becomes
 * `rtt * (pending + 1 + shed)`, so an endpoint shedding a lot looks busy in
 * proportion and gets fewer calls, and shed load goes to replicas with room.
 * Without it, a shedding endpoint looks idle (its refusals are fast and leave
 * nothing pending) and p2c sends it more. Unlike excluding a penalised
 * endpoint, this does not herd every call onto the one endpoint that has not
 * shed yet when all of them are overloaded. Time is an input: every method
 * takes `now`.
 */
export interface LoadPenalty {
  /** record counts one shed answer of `address` for `pushbackMs` (capped) from `now`. */
  record(address: string, pushbackMs: number, now: number): void;
  /** extraLoad is the number of shed answers of `address` still counting at `now`. */
  extraLoad(address: string, now: number): number;
  /** retain drops the state of endpoints not in `addresses` (called when the ready set changes). */
  retain(addresses: ReadonlySet<string>): void;
}

/** NO_LOAD_PENALTY never penalises (the `loadPenalty: false` setting). */
export const NO_LOAD_PENALTY: LoadPenalty = Object.freeze({
  record() {},
  extraLoad: () => 0,
  retain() {},
});

/** createLoadPenalty builds a LoadPenalty; options are validated here (RangeError). */
export function createLoadPenalty(options: LoadPenaltyOptions = {}): LoadPenalty {
  const maxPenaltyMs = options.maxPenaltyMs ?? LOAD_PENALTY_DEFAULTS.maxPenaltyMs;
  if (!(typeof maxPenaltyMs === "number" && Number.isFinite(maxPenaltyMs) && maxPenaltyMs >= 0)) {
    throw new RangeError(`loadPenalty.maxPenaltyMs ${String(maxPenaltyMs)} must be a number >= 0`);
  }
  // Per endpoint, the end times of its shed answers, sorted ascending.
  const ends = new Map<string, number[]>();
  const extraLoad = (address: string, now: number): number => {
    const list = ends.get(address);
    if (list === undefined) return 0;
    let expired = 0;
    while (expired < list.length && list[expired]! <= now) expired++;
    if (expired === list.length) {
      ends.delete(address);
      return 0;
    }
    if (expired > 0) list.splice(0, expired);
    return list.length;
  };
  return {
    record(address, pushbackMs, now) {
      if (!(pushbackMs > 0) || maxPenaltyMs === 0) return;
      const end = now + Math.min(pushbackMs, maxPenaltyMs);
      let list = ends.get(address);
      if (list === undefined) {
        list = [];
        ends.set(address, list);
      }
      // Pushbacks from one server are usually alike: the end goes last.
      let i = list.length;
      while (i > 0 && list[i - 1]! > end) i--;
      list.splice(i, 0, end);
      if (list.length > MAX_TRACKED) list.shift();
    },
    extraLoad: (address, now) => (ends.size === 0 ? 0 : extraLoad(address, now)),
    retain(addresses) {
      for (const address of ends.keys()) {
        if (!addresses.has(address)) ends.delete(address);
      }
    },
  };
}
