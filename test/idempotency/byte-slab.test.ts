import { describe, expect, it } from "vitest";
import { createByteSlab, type SlabRef, SPARE_CHUNKS } from "../../src/idempotency/byte-slab.js";

const bytesOf = (seed: number, length: number) =>
  Uint8Array.from({ length }, (_, i) => (seed * 31 + i) & 0xff);

describe("byte slab", () => {
  it("returns copies of what was put, which stay as they were when the chunk is reused", () => {
    const slab = createByteSlab(64);
    const a = slab.put(bytesOf(1, 10));
    const b = slab.put(bytesOf(2, 16));
    const readA = slab.read(a);
    expect(readA).toEqual(bytesOf(1, 10));
    expect(slab.read(b)).toEqual(bytesOf(2, 16));
    expect(slab.liveBytes()).toBe(26);
    slab.free(a);
    slab.free(b);
    expect(slab.liveBytes()).toBe(0);
    const copy = bytesOf(3, 16);
    const c = slab.put(copy);
    copy.fill(0); // the slab copied the bytes in
    for (let i = 0; i < 20; i++) slab.free(slab.put(bytesOf(4 + i, 16)));
    expect(slab.read(c)).toEqual(bytesOf(3, 16));
    expect(readA).toEqual(bytesOf(1, 10)); // a copy: its chunk was reused since
    slab.read(c).fill(0xee); // writing to a copy changes nothing stored
    expect(slab.read(c)).toEqual(bytesOf(3, 16));
  });

  it("takes entries up to a quarter chunk and refuses larger ones", () => {
    const slab = createByteSlab(64);
    expect(slab.fits(16)).toBe(true);
    expect(slab.fits(17)).toBe(false);
    expect(() => slab.put(new Uint8Array(17))).toThrow(/17 bytes do not fit/);
    expect(slab.put(new Uint8Array(0)).length).toBe(0);
  });

  it("rejects a chunk size that is not a positive integer", () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      expect(() => createByteSlab(bad), String(bad)).toThrow(RangeError);
    }
  });

  it("reuses emptied chunks, keeping SPARE_CHUNKS of them and letting the others go", () => {
    const slab = createByteSlab(64);
    const refs: SlabRef[] = [];
    for (let i = 0; i < 16; i++) refs.push(slab.put(bytesOf(i, 16))); // 4 chunks full
    expect(slab.heldBytes()).toBe(4 * 64);
    // Free the first three chunks' entries: SPARE_CHUNKS of them stay as spares.
    for (const r of refs.slice(0, 12)) slab.free(r);
    expect(SPARE_CHUNKS).toBe(2);
    expect(slab.heldBytes()).toBe((1 + SPARE_CHUNKS) * 64);
    expect(slab.liveBytes()).toBe(64);
    // The next puts take the spares before any new chunk.
    const next: SlabRef[] = [];
    for (let i = 0; i < 8; i++) next.push(slab.put(bytesOf(100 + i, 16)));
    expect(slab.heldBytes()).toBe(3 * 64);
    next.push(slab.put(bytesOf(108, 16)));
    expect(slab.heldBytes()).toBe(4 * 64);
    for (const [i, r] of next.entries()) expect(slab.read(r)).toEqual(bytesOf(100 + i, 16));
    for (const [i, r] of refs.slice(12).entries())
      expect(slab.read(r)).toEqual(bytesOf(12 + i, 16));
  });

  it("retires a chunk once, even when empty entries in it are freed after it emptied", () => {
    const slab = createByteSlab(64);
    const empties: SlabRef[] = [];
    const full: SlabRef[] = [];
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 4; i++) full.push(slab.put(bytesOf(c * 4 + i, 16)));
      empties.push(slab.put(new Uint8Array(0))); // at the end of a full chunk
    }
    // The first chunk empties out, then its empty entry goes after it.
    for (const r of full.slice(0, 4)) slab.free(r);
    slab.free(empties[0] as SlabRef);
    // One spare, handed out once: new entries never share a chunk's bytes.
    const fresh = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => slab.put(bytesOf(50 + i, 16)));
    for (const [i, r] of fresh.entries()) expect(slab.read(r)).toEqual(bytesOf(50 + i, 16));
    for (const [i, r] of full.slice(4).entries()) expect(slab.read(r)).toEqual(bytesOf(4 + i, 16));
    expect(new Set(fresh.map((r) => r.chunk)).size).toBe(2);
  });

  it("keeps every live entry intact through long churn over reused chunks", () => {
    const slab = createByteSlab(256);
    // A FIFO of live entries of varied sizes, as the store's LRU evicts them.
    const live: { ref: SlabRef; seed: number; length: number }[] = [];
    let allocatedMax = 0;
    for (let i = 0; i < 5_000; i++) {
      const length = (i * 7) % 60;
      live.push({ ref: slab.put(bytesOf(i, length)), seed: i, length });
      while (slab.liveBytes() > 1_000) {
        const oldest = live.shift();
        if (oldest !== undefined) slab.free(oldest.ref);
      }
      if (i % 97 === 0) {
        for (const e of live) expect(slab.read(e.ref)).toEqual(bytesOf(e.seed, e.length));
      }
      allocatedMax = Math.max(allocatedMax, slab.heldBytes());
    }
    // ~1000 live bytes in 256-byte chunks: a bounded set of chunks, reused.
    expect(allocatedMax).toBeLessThanOrEqual(10 * 256);
  });

  it("says it is wasteful when pinned, mostly empty chunks hold over twice the live bytes", () => {
    const slab = createByteSlab(64);
    const pinned: SlabRef[] = [];
    // One entry in each of 8 chunks stays (a record kept alive by replays); the others go.
    for (let c = 0; c < 8; c++) {
      const refs = [0, 1, 2, 3].map((i) => slab.put(bytesOf(c * 4 + i, 16)));
      pinned.push(refs[0] as SlabRef);
      for (const r of refs.slice(1)) slab.free(r);
    }
    // 8 chunks held (the current one too) for 128 live bytes.
    expect(slab.liveBytes()).toBe(8 * 16);
    expect(slab.heldBytes()).toBe(8 * 64);
    expect(slab.wasteful()).toBe(true);
    // Moving the live entries to a fresh slab packs them into two chunks.
    const fresh = createByteSlab(64);
    const moved = pinned.map((r) => fresh.put(slab.read(r)));
    expect(fresh.heldBytes()).toBe(2 * 64);
    expect(fresh.wasteful()).toBe(false);
    for (const [c, r] of moved.entries()) expect(fresh.read(r)).toEqual(bytesOf(c * 4, 16));
  });

  it("is not wasteful while chunks are well used", () => {
    const slab = createByteSlab(64);
    const refs: SlabRef[] = [];
    for (let i = 0; i < 40; i++) refs.push(slab.put(bytesOf(i, 16)));
    // A FIFO churn (an LRU store evicting its oldest) never pins chunks.
    for (let i = 0; i < 400; i++) {
      slab.free(refs.shift() as SlabRef);
      refs.push(slab.put(bytesOf(i, 16)));
      expect(slab.wasteful()).toBe(false);
    }
    expect(slab.heldBytes()).toBeLessThanOrEqual(11 * 64);
  });
});
