import { stripUndefined } from "../strip-undefined.js";
import {
  type Admission,
  buildCircuitBreaker,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitTransition,
  resolveCircuitBreakerOptions,
} from "./circuit-breaker.js";

/**
 * BreakerRegistryOptions configures createBreakerRegistry. Defaults
 * (BREAKER_REGISTRY_DEFAULTS): breaker CIRCUIT_BREAKER_DEFAULTS, idleMs
 * 300_000.
 */
export interface BreakerRegistryOptions {
  /** breaker configures every breaker of the registry (validated once, here). */
  readonly breaker?: Omit<CircuitBreakerOptions, "onTransition">;
  /** idleMs evicts a breaker unused for this long, > 0; also how often idle breakers are swept. */
  readonly idleMs?: number;
  /** onTransition receives every breaker's transitions with its key. */
  readonly onTransition?: ((key: string, transition: CircuitTransition) => void) | undefined;
}

/** BREAKER_REGISTRY_DEFAULTS are the defaults documented on BreakerRegistryOptions. */
export const BREAKER_REGISTRY_DEFAULTS = Object.freeze({
  breaker: Object.freeze({}),
  // Five minutes outlives any open period (max 60 s by default), so a breaker
  // is never evicted while it still protects its target.
  idleMs: 300_000,
  onTransition: undefined,
});

/**
 * BreakerRegistry hands out one breaker per key (a target, a method, a
 * target+method pair), created on first use. It runs no timers: breakers
 * transition lazily on access and idle ones are swept lazily, at most once
 * per `idleMs`, during `get`.
 */
export interface BreakerRegistry {
  /** get returns the key's breaker, creating it, and marks it used at `now`. */
  get(key: string, now: number): CircuitBreaker;
  /** tryAcquire is `get(key, now).tryAcquire(now)`. */
  tryAcquire(key: string, now: number): Admission;
  /** peek returns the key's breaker without creating it or marking it used. */
  peek(key: string): CircuitBreaker | undefined;
  /** delete drops the key's breaker; returns whether there was one. */
  delete(key: string): boolean;
  /**
   * sweep evicts breakers unused for `idleMs` that are not still open, and
   * returns how many it evicted. A later `get` starts such a key closed.
   */
  sweep(now: number): number;
  /** size is the number of live breakers. */
  readonly size: number;
  /** keys lists the live breakers' keys, oldest first (for snapshots; marks nothing used). */
  keys(): string[];
}

interface Entry {
  readonly breaker: CircuitBreaker;
  usedAt: number;
}

/** createBreakerRegistry builds a registry; options are validated here (RangeError). */
export function createBreakerRegistry(options: BreakerRegistryOptions = {}): BreakerRegistry {
  const o = { ...BREAKER_REGISTRY_DEFAULTS, ...stripUndefined(options) };
  if (!(o.idleMs > 0) || !Number.isFinite(o.idleMs)) {
    throw new RangeError(`idleMs ${o.idleMs} must be a finite number > 0`);
  }
  const resolved = resolveCircuitBreakerOptions(o.breaker);
  const onTransition = o.onTransition;
  const entries = new Map<string, Entry>();
  let sweptAt = Number.NaN;

  const sweep = (now: number): number => {
    sweptAt = now;
    let evicted = 0;
    for (const [key, entry] of entries) {
      if (now - entry.usedAt < o.idleMs) continue;
      const state = entry.breaker.state(now);
      if (state.type === "open" || (state.type === "half-open" && state.probesInFlight > 0)) {
        continue;
      }
      entries.delete(key);
      evicted++;
    }
    return evicted;
  };

  const get = (key: string, now: number): CircuitBreaker => {
    if (Number.isNaN(sweptAt)) sweptAt = now;
    else if (now - sweptAt >= o.idleMs) sweep(now);
    let entry = entries.get(key);
    if (entry === undefined) {
      const listener =
        onTransition === undefined ? undefined : (t: CircuitTransition) => onTransition(key, t);
      entry = { breaker: buildCircuitBreaker(resolved, listener), usedAt: now };
      entries.set(key, entry);
    } else {
      entry.usedAt = now;
    }
    return entry.breaker;
  };

  return {
    get,
    tryAcquire: (key, now) => get(key, now).tryAcquire(now),
    peek: (key) => entries.get(key)?.breaker,
    delete: (key) => entries.delete(key),
    sweep,
    get size() {
      return entries.size;
    },
    keys: () => [...entries.keys()],
  };
}
