/** PickCounter is what a PickRing counts picks on: one per endpoint. */
export interface PickCounter {
  /** picks is how many of the ring's picks chose this counter's endpoint. */
  picks: number;
}

/**
 * PickRing remembers the last `size` picks, so a snapshot can show each
 * endpoint's share of recent traffic. Each slot holds the counter of the
 * endpoint picked; recording bumps it and takes one off the counter of the
 * pick it overwrites, so the shares are ready to read at any time (an array
 * store and two increments per pick, no lookup, nothing to count later).
 */
export interface PickRing<C extends PickCounter> {
  /** record notes one pick of the endpoint whose counter is `counter`. */
  record(counter: C): void;
  /** counted is how many picks the ring holds (at most size). */
  readonly counted: number;
  /** size is the most picks the ring keeps. */
  readonly size: number;
}

/** PICK_RING_SIZE is the default window: a share to 0.1%, little memory. */
export const PICK_RING_SIZE = 1000;

/** createPickRing builds a ring of `size` picks (an integer >= 1). */
export function createPickRing<C extends PickCounter>(size: number = PICK_RING_SIZE): PickRing<C> {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`pick ring size ${size} must be an integer >= 1`);
  }
  const ring: C[] = [];
  let next = 0;
  return {
    size,
    record(counter) {
      const old = ring[next];
      if (old !== undefined) old.picks--;
      ring[next] = counter;
      counter.picks++;
      next = next + 1 === size ? 0 : next + 1;
    },
    get counted() {
      return ring.length;
    },
  };
}
