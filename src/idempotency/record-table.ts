import { randomBytes } from "node:crypto";
import { createByteSlab, type SlabChunk, type SlabRef } from "./byte-slab.js";
import { halfSipHash } from "./half-siphash.js";
import type { HeaderList, IdempotencyOutcome } from "./outcome.js";
import type { IdempotencyRecord } from "./store.js";

/**
 * RecordTable holds a memory store's completed records as a hash table in
 * typed arrays, in least-recently-used order, with each record's key, request
 * fingerprint and ok message in a ByteSlab: 10,000 records are a few typed
 * arrays and slab chunks, not 40,000 objects on the V8 heap.
 *
 * Why: a heap snapshot of a keyed server at 10,000 records held 3.4 MB of
 * record objects, key strings (three cons strings each) and the Map's
 * table, all promoted to the old generation, and V8 grows the old generation
 * to about four times what survives a full GC: a 200-record store instead
 * measured 25 MB less peak RSS. Off the heap the records cost their bytes.
 *
 * Slots are reused (a free list); a slot number is valid until its record is
 * removed. Keys are compared byte for byte: ASCII keys as they are, others
 * as UTF-16 (lossless for any JS string, lone surrogates included) under a
 * flag. The bucket hash is HalfSipHash-1-3 under a random per-table key, so
 * callers who choose keys cannot flood one bucket. @private
 */
export interface RecordTable {
  readonly size: number;
  /** find returns the slot holding `key`, or -1. */
  find(key: string): number;
  /** insert adds a record under `key` (which must be absent) and returns its slot. */
  insert(
    key: string,
    fingerprint: string,
    outcome: IdempotencyOutcome,
    expiresAt: number,
    bytes: number,
  ): number;
  remove(slot: number): void;
  /** touch makes a record the most recently used. */
  touch(slot: number): void;
  /** oldest is the least recently used record's slot, or -1 when empty. */
  oldest(): number;
  expiresAt(slot: number): number;
  /** bytes is what insert was given for the record (its share of a byte budget). */
  bytes(slot: number): number;
  /** record returns a copy of a record (the slab reuses its chunks). */
  record(slot: number): IdempotencyRecord;
  /** slabBytes is what the slab's chunks hold, for tests and stats. */
  slabBytes(): number;
}

// Per-slot integers, STRIDE to a slot.
const HASH = 0; // the key's hash
const NEXT = 1; // next slot in the bucket's chain, or in the free list
const OLDER = 2; // LRU neighbours
const NEWER = 3;
const OFFSET = 4; // slab entry: [key][fingerprint][message]
const LENGTH = 5;
const KEY_BYTES = 6;
const BYTES = 7;
const FLAGS = 8;
const STRIDE = 9;

const KEY_WIDE = 1; // key bytes are UTF-16LE
const FP_IN_SLAB = 2; // a 32-byte SHA-256 fingerprint follows the key
const HAS_EXTRA = 4; // extras.get(slot) holds what the slab does not
const MESSAGE_IN_SLAB = 8; // an ok outcome's message follows (else extras.outcome)
const KEY_APART = 16; // the key is too large for a chunk: extras.key

const NONE = -1;
const FINGERPRINT_BYTES = 32;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const INITIAL_SLOTS = 64;
const MAX_SCRATCH_BYTES = 64 * 1024;

/** Extra is what a record keeps outside the slab, when it has to. */
interface Extra {
  key?: string;
  fingerprint?: string;
  outcome?: IdempotencyOutcome;
  lists?: readonly [HeaderList, HeaderList];
}

const NO_HEADERS: HeaderList = Object.freeze([]);
const EMPTY_OK: IdempotencyOutcome = Object.freeze({
  kind: "ok",
  message: new Uint8Array(0),
  header: NO_HEADERS,
  trailer: NO_HEADERS,
});

/** createRecordTable makes a table of up to `maxSlots` records in slab chunks of `chunkBytes`. @private */
export function createRecordTable(maxSlots: number, chunkBytes: number): RecordTable {
  let slab = createByteSlab(chunkBytes);
  const seed = randomBytes(8);
  const k0 = seed.readInt32LE(0);
  const k1 = seed.readInt32LE(4);

  let capacity = 0;
  let ints = new Int32Array(0);
  const int = (i: number): number => ints[i] as number;
  let expires = new Float64Array(0);
  const chunks: (SlabChunk | undefined)[] = [];
  let buckets = new Int32Array(0);
  let mask = 0;
  let free = NONE;
  let size = 0;
  let oldestSlot = NONE;
  let newestSlot = NONE;
  const extras = new Map<number, Extra>();

  // The last key encoded: find then insert of one key encode it once.
  let scratch = Buffer.allocUnsafe(1024);
  let encodedKey: string | undefined;
  let keyBuf: Buffer = scratch;
  let keyLength = 0;
  let keyWide = false;
  let keyHash = 0;
  const encode = (key: string) => {
    if (key === encodedKey) return;
    // UTF-8 takes up to 3 bytes per UTF-16 unit, UTF-16 2. The scratch
    // grows to 64 KiB at most: a longer key gets a buffer of its own.
    const need = key.length * 3;
    if (need > scratch.length && need <= MAX_SCRATCH_BYTES) scratch = Buffer.allocUnsafe(need);
    keyBuf = need <= scratch.length ? scratch : Buffer.allocUnsafe(need);
    keyLength = keyBuf.write(key, 0, "utf8");
    keyWide = keyLength !== key.length;
    // Not ASCII: UTF-8 would turn lone surrogates into U+FFFD, so that two
    // keys could compare equal. UTF-16 keeps every string apart.
    if (keyWide) keyLength = keyBuf.write(key, 0, "utf16le");
    keyHash = halfSipHash(keyBuf, keyLength, k0, k1) ^ (keyWide ? 1 : 0);
    encodedKey = key;
  };

  const grow = () => {
    const next = Math.min(maxSlots, Math.max(INITIAL_SLOTS, capacity * 2));
    const nextInts = new Int32Array(next * STRIDE);
    nextInts.set(ints);
    const nextExpires = new Float64Array(next);
    nextExpires.set(expires);
    ints = nextInts;
    expires = nextExpires;
    chunks.length = next;
    for (let s = next - 1; s >= capacity; s--) {
      ints[s * STRIDE + NEXT] = free;
      free = s;
    }
    capacity = next;
    // Buckets: the power of two at or above twice the slots.
    let count = 1;
    while (count < capacity * 2) count *= 2;
    buckets = new Int32Array(count).fill(NONE);
    mask = count - 1;
    for (let s = newestSlot; s !== NONE; s = int(s * STRIDE + OLDER)) {
      const b = int(s * STRIDE + HASH) & mask;
      ints[s * STRIDE + NEXT] = buckets[b] as number;
      buckets[b] = s;
    }
  };

  const ref: SlabRef = { chunk: undefined, offset: 0, length: 0 };
  const refOf = (slot: number): SlabRef => {
    ref.chunk = chunks[slot];
    ref.offset = int(slot * STRIDE + OFFSET);
    ref.length = int(slot * STRIDE + LENGTH);
    return ref;
  };

  const keyEquals = (slot: number, key: string): boolean => {
    const at = slot * STRIDE;
    const flags = int(at + FLAGS);
    if ((flags & KEY_APART) !== 0) return extras.get(slot)?.key === key;
    if (int(at + KEY_BYTES) !== keyLength || ((flags & KEY_WIDE) !== 0) !== keyWide) return false;
    const buf = (chunks[slot] as SlabChunk).buf;
    const offset = int(at + OFFSET);
    for (let i = 0; i < keyLength; i++) {
      if (buf[offset + i] !== keyBuf[i]) return false;
    }
    return true;
  };

  const unlinkLru = (slot: number) => {
    const at = slot * STRIDE;
    const older = int(at + OLDER);
    const newer = int(at + NEWER);
    if (older === NONE) oldestSlot = newer;
    else ints[older * STRIDE + NEWER] = newer;
    if (newer === NONE) newestSlot = older;
    else ints[newer * STRIDE + OLDER] = older;
  };
  const linkNewest = (slot: number) => {
    const at = slot * STRIDE;
    ints[at + OLDER] = newestSlot;
    ints[at + NEWER] = NONE;
    if (newestSlot === NONE) oldestSlot = slot;
    else ints[newestSlot * STRIDE + NEWER] = slot;
    newestSlot = slot;
  };

  // compact moves every slabbed record to a fresh slab, when records that
  // outlived their neighbours (replays keep them) pin mostly empty chunks.
  const compact = () => {
    const fresh = createByteSlab(slab.chunkBytes);
    const moved: SlabRef = { chunk: undefined, offset: 0, length: 0 };
    for (let s = oldestSlot; s !== NONE; s = int(s * STRIDE + NEWER)) {
      const chunk = chunks[s];
      if (chunk === undefined) continue;
      const at = s * STRIDE;
      const offset = int(at + OFFSET);
      fresh.put(chunk.buf.subarray(offset, offset + int(at + LENGTH)), moved);
      chunks[s] = moved.chunk;
      ints[at + OFFSET] = moved.offset;
    }
    slab = fresh;
  };

  return {
    get size() {
      return size;
    },
    find(key) {
      if (size === 0) return NONE;
      encode(key);
      for (let s = buckets[keyHash & mask] as number; s !== NONE; s = int(s * STRIDE + NEXT)) {
        if (int(s * STRIDE + HASH) === keyHash && keyEquals(s, key)) return s;
      }
      return NONE;
    },
    insert(key, fingerprint, outcome, expiresAt, bytes) {
      if (free === NONE) {
        if (capacity >= maxSlots) throw new RangeError(`record table is full (${maxSlots})`);
        grow();
      }
      encode(key);
      const slot = free;
      const at = slot * STRIDE;
      free = int(at + NEXT);

      const ok = outcome.kind === "ok";
      const fpInSlab = SHA256_HEX.test(fingerprint);
      const fpBytes = fpInSlab ? FINGERPRINT_BYTES : 0;
      let flags = keyWide ? KEY_WIDE : 0;
      let extra: Extra | undefined;
      let length = keyLength + fpBytes + (ok ? outcome.message.byteLength : 0);
      if (ok && slab.fits(length)) {
        flags |= MESSAGE_IN_SLAB;
      } else {
        extra = { outcome };
        length = keyLength + fpBytes;
      }
      if (slab.fits(length)) {
        if (fpInSlab) flags |= FP_IN_SLAB;
        else {
          extra ??= {};
          extra.fingerprint = fingerprint;
        }
        if (slab.wasteful()) compact();
        slab.reserve(length, ref);
        const chunk = ref.chunk as SlabChunk;
        const offset = ref.offset;
        chunk.buf.set(keyBuf.subarray(0, keyLength), offset);
        if (fpInSlab) chunk.node.write(fingerprint, offset + keyLength, FINGERPRINT_BYTES, "hex");
        if ((flags & MESSAGE_IN_SLAB) !== 0 && outcome.kind === "ok") {
          chunk.buf.set(outcome.message, offset + keyLength + fpBytes);
          const { header, trailer } = outcome;
          if (header.length > 0 || trailer.length > 0) {
            extra ??= {};
            extra.lists = [header, trailer];
          }
        }
        chunks[slot] = chunk;
        ints[at + OFFSET] = offset;
        ints[at + LENGTH] = length;
      } else {
        // A key too large for a chunk: the whole record stays apart.
        flags = KEY_APART;
        extra = { key, fingerprint, outcome };
        chunks[slot] = undefined;
        ints[at + OFFSET] = 0;
        ints[at + LENGTH] = 0;
      }
      if (extra !== undefined) {
        flags |= HAS_EXTRA;
        extras.set(slot, extra);
      }
      ints[at + HASH] = keyHash;
      ints[at + KEY_BYTES] = keyLength;
      ints[at + BYTES] = bytes;
      ints[at + FLAGS] = flags;
      expires[slot] = expiresAt;
      const b = keyHash & mask;
      ints[at + NEXT] = buckets[b] as number;
      buckets[b] = slot;
      linkNewest(slot);
      size++;
      return slot;
    },
    remove(slot) {
      const at = slot * STRIDE;
      // Out of its bucket's chain.
      const b = int(at + HASH) & mask;
      if (buckets[b] === slot) {
        buckets[b] = int(at + NEXT);
      } else {
        let s = buckets[b] as number;
        while (int(s * STRIDE + NEXT) !== slot) s = int(s * STRIDE + NEXT);
        ints[s * STRIDE + NEXT] = int(at + NEXT);
      }
      unlinkLru(slot);
      if (chunks[slot] !== undefined) {
        slab.free(refOf(slot));
        chunks[slot] = undefined;
      }
      if ((int(at + FLAGS) & HAS_EXTRA) !== 0) extras.delete(slot);
      ints[at + FLAGS] = 0;
      ints[at + NEXT] = free;
      free = slot;
      size--;
    },
    touch(slot) {
      if (slot === newestSlot) return;
      unlinkLru(slot);
      linkNewest(slot);
    },
    oldest: () => oldestSlot,
    expiresAt: (slot) => expires[slot] as number,
    bytes: (slot) => int(slot * STRIDE + BYTES),
    record(slot): IdempotencyRecord {
      const at = slot * STRIDE;
      const flags = int(at + FLAGS);
      const extra = (flags & HAS_EXTRA) !== 0 ? extras.get(slot) : undefined;
      const chunk = chunks[slot];
      const offset = int(at + OFFSET) + int(at + KEY_BYTES);
      const fingerprint =
        (flags & FP_IN_SLAB) !== 0 && chunk !== undefined
          ? chunk.node.toString("hex", offset, offset + FINGERPRINT_BYTES)
          : (extra?.fingerprint ?? "");
      if ((flags & MESSAGE_IN_SLAB) === 0 || chunk === undefined) {
        return { fingerprint, outcome: extra?.outcome ?? EMPTY_OK };
      }
      const start = offset + ((flags & FP_IN_SLAB) !== 0 ? FINGERPRINT_BYTES : 0);
      // A copy: the slab reuses emptied chunks.
      const message = chunk.buf.slice(start, int(at + OFFSET) + int(at + LENGTH));
      return {
        fingerprint,
        outcome: {
          kind: "ok",
          message,
          header: extra?.lists?.[0] ?? NO_HEADERS,
          trailer: extra?.lists?.[1] ?? NO_HEADERS,
        },
      };
    },
    slabBytes: () => slab.heldBytes(),
  };
}
