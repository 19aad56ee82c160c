/**
 * TimeBuckets counts events over a sliding time window split into equal
 * buckets. Memory is two small typed arrays whatever the traffic, which keeps
 * thousands of windows (one per breaker, per endpoint) cheap.
 *
 * The window covers the current bucket and the `buckets - 1` before it, so it
 * spans between `windowMs - windowMs / buckets` and `windowMs` of history: a
 * count drops out one whole bucket at a time, not event by event.
 */
export interface TimeBuckets {
  /** add counts one event in `field` (0-based) at time `now`. */
  add(field: number, now: number): void;
  /** sum returns the events of `field` in the window that ends at `now`. */
  sum(field: number, now: number): number;
  /** reset forgets every event. */
  reset(): void;
}

/** TimeBucketsOptions configures createTimeBuckets. */
export interface TimeBucketsOptions {
  /** windowMs is the length of the sliding window; must be > 0. */
  readonly windowMs: number;
  /** buckets is the window's resolution, 1..1000 (default 10). */
  readonly buckets?: number;
  /** fields is how many independent counters share the buckets, 1..16 (default 1). */
  readonly fields?: number;
}

/** DEFAULT_BUCKETS: ten buckets bound the window's error to 10% of its length. */
export const DEFAULT_BUCKETS = 10;

/**
 * createTimeBuckets builds a sliding-window counter. Time is passed in and
 * assumed monotonic: an event older than the bucket already in its slot is
 * dropped rather than allowed to wipe newer counts.
 */
export function createTimeBuckets(options: TimeBucketsOptions): TimeBuckets {
  validateTimeBucketsOptions(options);
  return new SlidingBuckets(
    options.windowMs,
    options.buckets ?? DEFAULT_BUCKETS,
    options.fields ?? 1,
  );
}

// A class behind the factory: methods live once on the prototype, so each of
// the thousands of instances costs its fields and one typed array, not a set
// of closures.
class SlidingBuckets implements TimeBuckets {
  private readonly bucketMs: number;
  private readonly buckets: number;
  private readonly stride: number;
  // Per slot: [epoch, count of field 0, count of field 1, ...]. One array, not
  // two, because each typed array carries ~100 bytes of overhead. A NaN epoch
  // marks an unused slot: every comparison with it is false.
  private readonly slots: Float64Array;

  constructor(windowMs: number, buckets: number, fields: number) {
    this.bucketMs = windowMs / buckets;
    this.buckets = buckets;
    this.stride = fields + 1;
    this.slots = new Float64Array(buckets * this.stride);
    this.reset();
  }

  add(field: number, now: number): void {
    const epoch = Math.floor(now / this.bucketMs);
    const base = (((epoch % this.buckets) + this.buckets) % this.buckets) * this.stride;
    const current = this.slots[base]!;
    if (current !== epoch) {
      if (current > epoch) return;
      this.slots.fill(0, base, base + this.stride);
      this.slots[base] = epoch;
    }
    this.slots[base + 1 + field]!++;
  }

  sum(field: number, now: number): number {
    const epoch = Math.floor(now / this.bucketMs);
    const oldest = epoch - this.buckets;
    let total = 0;
    for (let base = 0; base < this.slots.length; base += this.stride) {
      const e = this.slots[base]!;
      if (e <= epoch && e > oldest) total += this.slots[base + 1 + field]!;
    }
    return total;
  }

  reset(): void {
    this.slots.fill(0);
    for (let base = 0; base < this.slots.length; base += this.stride) this.slots[base] = Number.NaN;
  }
}

/**
 * validateTimeBucketsOptions throws a RangeError naming the first bad value.
 * @private
 */
export function validateTimeBucketsOptions(options: TimeBucketsOptions): void {
  const { windowMs } = options;
  const buckets = options.buckets ?? DEFAULT_BUCKETS;
  const fields = options.fields ?? 1;
  if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
    throw new RangeError(`windowMs ${windowMs} must be a finite number > 0`);
  }
  if (!Number.isInteger(buckets) || buckets < 1 || buckets > 1000) {
    throw new RangeError(`buckets ${buckets} must be an integer in 1..1000`);
  }
  if (!Number.isInteger(fields) || fields < 1 || fields > 16) {
    throw new RangeError(`fields ${fields} must be an integer in 1..16`);
  }
}
