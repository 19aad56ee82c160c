import { stripUndefined } from "../strip-undefined.js";

/**
 * SlowStart ramps a new endpoint's weight up so it is not flooded before its
 * caches, JIT and connection pools are warm.
 */
export interface SlowStart {
  /** factor multiplies the endpoint's weight, in [minWeightFactor, 1], `ageMs` after it became ready. */
  factor(ageMs: number): number;
  /** windowMs is the ramp's length; 0 means slow start is off. */
  readonly windowMs: number;
}

/**
 * SlowStartOptions configures createSlowStart. Defaults (SLOW_START_DEFAULTS):
 * windowMs 30_000, minWeightFactor 0.1, aggression 1 (linear).
 */
export interface SlowStartOptions {
  /** windowMs is the ramp's length, >= 0; 0 disables slow start. */
  readonly windowMs?: number;
  /** minWeightFactor is the factor at age 0, in (0, 1]. */
  readonly minWeightFactor?: number;
  /** aggression > 0 shapes the ramp (Envoy's): > 1 ramps faster early, < 1 slower. */
  readonly aggression?: number;
}

/** SLOW_START_DEFAULTS are the defaults documented on SlowStartOptions. */
export const SLOW_START_DEFAULTS: Required<SlowStartOptions> = Object.freeze({
  // 30 s covers a JVM or V8 warm-up and a cold cache fill in most services.
  windowMs: 30_000,
  // Envoy's default min_weight_percent (10%): a new endpoint still gets some traffic to warm on.
  minWeightFactor: 0.1,
  aggression: 1,
});

/**
 * createSlowStart builds Envoy's ramp:
 * `factor = max(minWeightFactor, (ageMs / windowMs) ** (1 / aggression))` while
 * `ageMs < windowMs`, then 1. Negative ages (clock skew) count as 0.
 */
export function createSlowStart(options: SlowStartOptions = {}): SlowStart {
  const { windowMs, minWeightFactor, aggression } = {
    ...SLOW_START_DEFAULTS,
    ...stripUndefined(options),
  };
  if (!(windowMs >= 0) || !Number.isFinite(windowMs)) {
    throw new RangeError(`windowMs ${windowMs} must be a finite number >= 0`);
  }
  if (!(minWeightFactor > 0 && minWeightFactor <= 1)) {
    throw new RangeError(`minWeightFactor ${minWeightFactor} must be in (0, 1]`);
  }
  if (!(aggression > 0) || !Number.isFinite(aggression)) {
    throw new RangeError(`aggression ${aggression} must be a finite number > 0`);
  }
  const exponent = 1 / aggression;
  return Object.freeze({
    windowMs,
    factor(ageMs: number): number {
      if (windowMs === 0 || ageMs >= windowMs) return 1;
      const t = ageMs > 0 ? ageMs / windowMs : 0;
      return Math.max(minWeightFactor, t ** exponent);
    },
  });
}

/** NO_SLOW_START is a SlowStart that is always off (factor 1). */
export const NO_SLOW_START: SlowStart = createSlowStart({ windowMs: 0 });
