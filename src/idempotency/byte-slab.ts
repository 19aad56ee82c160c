/**
 * ByteSlab keeps many small byte strings in a few large chunks, so that a
 * store holding thousands of them for minutes does not hold thousands of
 * ArrayBuffers: each one is a heap object, an off-heap allocation and GC
 * bookkeeping of its own, promoted to the old generation and dying there.
 *
 * Bytes are appended to the current chunk and never overwritten: read()
 * returns a view, not a copy (a replay of 4 KiB copies nothing), and a view
 * stays valid after its entry is freed. A chunk whose entries were all freed
 * is let go to the GC. A chunk holding one live entry is pinned whole, so when
 * chunks hold more than twice the live bytes (plus two chunks) `wasteful()`
 * says so and the owner moves its entries to a fresh slab.
 * @private
 */
export interface SlabChunk {
  readonly buf: Uint8Array;
  used: number;
  live: number;
}

/** SlabRef is where put() placed bytes. @private */
export interface SlabRef {
  readonly chunk: SlabChunk;
  readonly offset: number;
  readonly length: number;
}

/** @private */
export interface ByteSlab {
  /** fits says whether `length` bytes go into a chunk (larger ones are kept apart by the owner). */
  fits(length: number): boolean;
  put(bytes: Uint8Array): SlabRef;
  /** read returns a view of the bytes; chunks are never reused, so it stays valid. */
  read(ref: SlabRef): Uint8Array;
  free(ref: SlabRef): void;
  wasteful(): boolean;
  /** chunkBytes is the size of one chunk; heldBytes what all held chunks take. */
  readonly chunkBytes: number;
  heldBytes(): number;
  liveBytes(): number;
}

/** createByteSlab makes a slab of `chunkBytes` chunks (>= 1). @private */
export function createByteSlab(chunkBytes: number): ByteSlab {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw new RangeError(`chunkBytes ${chunkBytes} must be an integer >= 1`);
  }
  const newChunk = (): SlabChunk => ({ buf: new Uint8Array(chunkBytes), used: 0, live: 0 });
  let current: SlabChunk | undefined;
  let chunks = 0; // held: current plus those with live bytes
  let live = 0;
  const maxEntry = Math.max(1, Math.floor(chunkBytes / 4));
  return {
    chunkBytes,
    fits: (length) => length <= maxEntry,
    put(bytes) {
      const length = bytes.byteLength;
      if (length > maxEntry) throw new RangeError(`${length} bytes do not fit a slab chunk`);
      if (current === undefined || current.used + length > chunkBytes) {
        // The old current chunk is let go when it holds nothing live.
        if (current !== undefined && current.live === 0) chunks--;
        current = newChunk();
        chunks++;
      }
      const chunk = current;
      const offset = chunk.used;
      chunk.buf.set(bytes, offset);
      chunk.used += length;
      chunk.live += length;
      live += length;
      return { chunk, offset, length };
    },
    read: (ref) => ref.chunk.buf.subarray(ref.offset, ref.offset + ref.length),
    free(ref) {
      const chunk = ref.chunk;
      chunk.live -= ref.length;
      live -= ref.length;
      if (chunk.live === 0 && chunk !== current) chunks--;
    },
    wasteful: () => chunks > 2 && chunks * chunkBytes > 2 * live + 2 * chunkBytes,
    heldBytes: () => chunks * chunkBytes,
    liveBytes: () => live,
  };
}
