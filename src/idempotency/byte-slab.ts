/**
 * ByteSlab keeps many small byte strings in a few large chunks, so that a
 * store holding thousands of them for minutes does not hold thousands of
 * ArrayBuffers: each one is a heap object, an off-heap allocation and GC
 * bookkeeping of its own, promoted to the old generation and dying there.
 *
 * Bytes are appended to the current chunk. read() returns a copy (reads are
 * replays: rare), so a chunk whose entries were all freed is reused at once:
 * up to SPARE_CHUNKS of them wait for the next put, and only those beyond go
 * to the GC. (A store that let every emptied chunk go left up to ~64 MB of
 * dead ArrayBuffers waiting for a full GC, since V8 collects for external
 * memory only past that much growth: the store's RSS was 2-3x its budget.)
 * A chunk holding one live entry is pinned whole, so when chunks hold more
 * than twice the live bytes (plus two chunks) `wasteful()` says so and the
 * owner moves its entries to a fresh slab.
 * @private
 */
export interface SlabChunk {
  readonly buf: Uint8Array;
  /** node is buf as a Buffer, for hex. */
  readonly node: Buffer;
  used: number;
  live: number;
  /** retired: emptied and given up (spare or to the GC) until put reuses it. */
  retired: boolean;
}

/**
 * SlabRef is where put() placed bytes. The owner may pass its own record as
 * the target (put writes these three fields), so that a stored entry is one
 * object rather than two. @private
 */
export interface SlabRef {
  chunk: SlabChunk | undefined;
  offset: number;
  length: number;
}

/** @private */
export interface ByteSlab {
  /** fits says whether `length` bytes go into a chunk (larger ones are kept apart by the owner). */
  fits(length: number): boolean;
  /**
   * put copies `bytes` in, after `hex` decoded (an even-length hex string, or
   * "" for none), and records where in `into` (a new SlabRef by default).
   */
  put<R extends SlabRef>(bytes: Uint8Array, into?: R, hex?: string): R;
  /**
   * reserve sets aside `length` bytes (as put does, without copying) for the
   * owner to write at `into.chunk.buf[into.offset ...]`.
   */
  reserve<R extends SlabRef>(length: number, into: R): R;
  /** read returns a copy of the bytes (chunks are reused once their entries are freed). */
  read(ref: SlabRef): Uint8Array;
  free(ref: SlabRef): void;
  wasteful(): boolean;
  /** chunkBytes is the size of one chunk; heldBytes what held and spare chunks take. */
  readonly chunkBytes: number;
  heldBytes(): number;
  liveBytes(): number;
}

/** SPARE_CHUNKS is how many emptied chunks a slab keeps for reuse. @private */
export const SPARE_CHUNKS = 2;

/** createByteSlab makes a slab of `chunkBytes` chunks (>= 1). @private */
export function createByteSlab(chunkBytes: number): ByteSlab {
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1) {
    throw new RangeError(`chunkBytes ${chunkBytes} must be an integer >= 1`);
  }
  const newChunk = (): SlabChunk => {
    const buf = new Uint8Array(chunkBytes);
    return { buf, node: Buffer.from(buf.buffer, 0, chunkBytes), used: 0, live: 0, retired: false };
  };
  let current: SlabChunk | undefined;
  let chunks = 0; // held: current plus those with live bytes
  const spares: SlabChunk[] = [];
  // An emptied chunk waits for reuse, or goes to the GC beyond SPARE_CHUNKS.
  // Once only: freeing an empty entry of an already emptied chunk must not
  // retire it again (it would be handed out twice).
  const retire = (chunk: SlabChunk) => {
    if (chunk.retired) return;
    chunk.retired = true;
    chunks--;
    if (spares.length < SPARE_CHUNKS) {
      chunk.used = 0;
      spares.push(chunk);
    }
  };
  let live = 0;
  const maxEntry = Math.max(1, Math.floor(chunkBytes / 4));
  const reserve = <R extends SlabRef>(length: number, ref: R): R => {
    if (length > maxEntry) throw new RangeError(`${length} bytes do not fit a slab chunk`);
    if (current === undefined || current.used + length > chunkBytes) {
      // The old current chunk is retired when it holds nothing live.
      if (current !== undefined && current.live === 0) retire(current);
      current = spares.pop() ?? newChunk();
      current.retired = false;
      chunks++;
    }
    const chunk = current;
    const offset = chunk.used;
    chunk.used += length;
    chunk.live += length;
    live += length;
    ref.chunk = chunk;
    ref.offset = offset;
    ref.length = length;
    return ref;
  };
  return {
    chunkBytes,
    fits: (length) => length <= maxEntry,
    put<R extends SlabRef>(bytes: Uint8Array, into?: R, hex = ""): R {
      const prefix = hex.length >>> 1;
      const ref = reserve(prefix + bytes.byteLength, into ?? ({} as R));
      const chunk = ref.chunk as SlabChunk;
      if (prefix > 0) chunk.node.write(hex, ref.offset, prefix, "hex");
      chunk.buf.set(bytes, ref.offset + prefix);
      return ref;
    },
    reserve,
    read: (ref) => chunkOf(ref).buf.slice(ref.offset, ref.offset + ref.length),
    free(ref) {
      const chunk = chunkOf(ref);
      chunk.live -= ref.length;
      live -= ref.length;
      if (chunk.live === 0 && chunk !== current) retire(chunk);
    },
    wasteful: () => chunks > 2 && chunks * chunkBytes > 2 * live + 2 * chunkBytes,
    heldBytes: () => (chunks + spares.length) * chunkBytes,
    liveBytes: () => live,
  };
}

function chunkOf(ref: SlabRef): SlabChunk {
  if (ref.chunk === undefined) throw new RangeError("slab ref holds no bytes");
  return ref.chunk;
}
