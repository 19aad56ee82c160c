/**
 * PickRing remembers the addresses of the last `size` picks, so a snapshot
 * can show each endpoint's share of recent traffic. Recording is one array
 * store; counting walks the ring and happens only when a snapshot is taken.
 */
export interface PickRing {
  /** record notes one pick. */
  record(address: string): void;
  /** counts maps each address to its picks among the last `counted`. */
  counts(): { readonly counted: number; readonly byAddress: ReadonlyMap<string, number> };
  /** size is the most picks the ring keeps. */
  readonly size: number;
}

/** PICK_RING_SIZE is the default window: enough for a share to 0.1%, little memory. */
export const PICK_RING_SIZE = 1000;

/** createPickRing builds a ring of `size` picks (an integer >= 1). */
export function createPickRing(size: number = PICK_RING_SIZE): PickRing {
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`pick ring size ${size} must be an integer >= 1`);
  }
  const ring: string[] = [];
  let next = 0;
  return {
    size,
    record(address) {
      ring[next] = address;
      next = next + 1 === size ? 0 : next + 1;
    },
    counts() {
      const byAddress = new Map<string, number>();
      for (const a of ring) byAddress.set(a, (byAddress.get(a) ?? 0) + 1);
      return { counted: ring.length, byAddress };
    },
  };
}
