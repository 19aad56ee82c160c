import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { halfSipHash } from "../../src/idempotency/half-siphash.js";
import type { IdempotencyOutcome } from "../../src/idempotency/outcome.js";
import { createRecordTable } from "../../src/idempotency/record-table.js";
import type { IdempotencyRecord } from "../../src/idempotency/store.js";

describe("HalfSipHash", () => {
  it("gives the reference implementation's 32-bit test vectors (2-4 rounds, key 00..07)", () => {
    // vectors_hsip32 of the SipHash reference implementation, inputs 00, 00 01, ...
    const vectors = [
      0x5b9f35a9, 0xb85a4727, 0x03a662fa, 0x04e7fe8a, 0x89466e2a, 0x69b6fac5, 0x23fc6358,
      0xc563cf8b, 0x8f84b8d0, 0x79e706f8, 0x3479b094,
    ];
    const input = Uint8Array.from({ length: 64 }, (_, i) => i);
    vectors.forEach((want, length) => {
      expect(halfSipHash(input, length, 0x03020100, 0x07060504, 2, 4), `length ${length}`).toBe(
        want,
      );
    });
  });

  it("depends on its key", () => {
    const input = new TextEncoder().encode("same input");
    expect(halfSipHash(input, input.length, 1, 2)).not.toBe(halfSipHash(input, input.length, 1, 3));
  });
});

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

// A varied record per key: messages of several sizes (some too large for a
// 4 KiB chunk's quarter), SHA-256 and other fingerprints, headers, errors.
function recordFor(key: string, n: number): IdempotencyRecord {
  const fingerprint = n % 3 === 0 ? `fp-${n}` : sha(key);
  if (n % 7 === 0) {
    return {
      fingerprint,
      outcome: {
        kind: "error",
        code: Code.Aborted,
        message: `no: ${key}`,
        details: [],
        metadata: [["x-n", String(n)]],
      },
    };
  }
  const length = n % 11 === 0 ? 2_000 : (n * 37) % 300;
  const outcome: IdempotencyOutcome = {
    kind: "ok",
    message: Uint8Array.from({ length }, (_, i) => (n + i) & 0xff),
    header: n % 5 === 0 ? [["x-key", key]] : [],
    trailer: n % 10 === 0 ? [["x-t", "1"]] : [],
  };
  return { fingerprint, outcome };
}

// Keys that must all stay apart: ASCII, non-ASCII, lone surrogates (which
// UTF-8 would turn into the same U+FFFD), empty, longer than a slab chunk.
const specialKeys = [
  "",
  "a",
  "é",
  "\u00e9",
  "e\u0301",
  "\ud800",
  "\ud801",
  "\udc00",
  "\ufffd",
  "😀",
  "k".repeat(1_500),
  "k".repeat(1_501),
  `${"é".repeat(800)}x`,
  // Beyond the 64 KiB encoding scratch: encoded in a buffer of its own.
  "long".repeat(6_000),
  `${"long".repeat(6_000)}!`,
];

describe("record table", () => {
  it("agrees with a Map and an LRU list through random inserts, removals, touches and growth", () => {
    const maxSlots = 48;
    // 4 KiB chunks: entries up to 1 KiB are slabbed, longer keys kept apart.
    const table = createRecordTable(maxSlots, 4 * 1024);
    const model = new Map<string, { slot: number; n: number }>();
    let lru: string[] = [];
    let seed = 12345;
    const rand = (k: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % k;
    };
    const keys = [...specialKeys, ...Array.from({ length: 90 }, (_, i) => `key-${i}`)];
    for (let step = 0; step < 6_000; step++) {
      const key = keys[rand(keys.length)] as string;
      const have = model.get(key);
      const op = rand(4);
      if (have === undefined) {
        expect(table.find(key), key).toBe(-1);
        if (op < 3) {
          if (model.size === maxSlots) {
            const oldest = lru.shift() as string;
            expect(table.oldest()).toBe(model.get(oldest)?.slot);
            table.remove(table.oldest());
            model.delete(oldest);
          }
          const r = recordFor(key, step);
          const slot = table.insert(key, r.fingerprint, r.outcome, step, step % 1000);
          model.set(key, { slot, n: step });
          lru.push(key);
        }
      } else {
        expect(table.find(key), key).toBe(have.slot);
        expect(table.record(have.slot), key).toEqual(recordFor(key, have.n));
        expect(table.expiresAt(have.slot)).toBe(have.n);
        expect(table.bytes(have.slot)).toBe(have.n % 1000);
        if (op === 0) {
          table.remove(have.slot);
          model.delete(key);
          lru = lru.filter((k) => k !== key);
        } else if (op === 1) {
          table.touch(have.slot);
          lru = [...lru.filter((k) => k !== key), key];
        }
      }
      expect(table.size).toBe(model.size);
      expect(table.oldest()).toBe(lru.length === 0 ? -1 : model.get(lru[0] as string)?.slot);
    }
    // Every key still held finds its own record; the removed ones are gone.
    for (const key of keys) {
      const have = model.get(key);
      const slot = table.find(key);
      if (have === undefined) expect(slot, key).toBe(-1);
      else expect(table.record(slot), key).toEqual(recordFor(key, have.n));
    }
  });

  it("empties out: LRU order from oldest to newest, then nothing", () => {
    const table = createRecordTable(8, 4 * 1024);
    const r = recordFor("x", 1);
    for (const k of ["a", "b", "c", "d"]) table.insert(k, r.fingerprint, r.outcome, 0, 1);
    table.touch(table.find("b"));
    const order: string[] = [];
    while (table.oldest() !== -1) {
      const slot = table.oldest();
      order.push(["a", "b", "c", "d"].find((k) => table.find(k) === slot) as string);
      table.remove(slot);
    }
    expect(order).toEqual(["a", "c", "d", "b"]);
    expect(table.size).toBe(0);
    expect(table.find("a")).toBe(-1);
  });

  it("refuses a record beyond its slots", () => {
    const table = createRecordTable(2, 4 * 1024);
    const r = recordFor("x", 1);
    table.insert("a", r.fingerprint, r.outcome, 0, 1);
    table.insert("b", r.fingerprint, r.outcome, 0, 1);
    expect(() => table.insert("c", r.fingerprint, r.outcome, 0, 1)).toThrow(/full \(2\)/);
  });

  it("gives back its slab chunks as records are removed, and compacts records that pin them", () => {
    const table = createRecordTable(10_000, 4 * 1024);
    const message = (i: number) => Uint8Array.from({ length: 900 }, (_, j) => (i + j) & 0xff);
    const put = (i: number) =>
      table.insert(
        `k${i}`,
        sha(`k${i}`),
        { kind: "ok", message: message(i), header: [], trailer: [] },
        0,
        1,
      );
    // One record in four kept: each pins a chunk of otherwise removed ones.
    for (let i = 0; i < 400; i++) put(i);
    for (let i = 0; i < 400; i++) if (i % 4 !== 0) table.remove(table.find(`k${i}`));
    const pinned = table.slabBytes();
    for (let i = 400; i < 440; i++) put(i);
    // 140 records of ~1 KiB live: well under the 100 chunks the pinned ones held.
    expect(table.slabBytes()).toBeLessThan(pinned / 2);
    for (let i = 0; i < 440; i++) {
      if (i < 400 && i % 4 !== 0) continue;
      const got = table.record(table.find(`k${i}`));
      expect(got.outcome.kind === "ok" && got.outcome.message, `k${i}`).toEqual(message(i));
      expect(got.fingerprint).toBe(sha(`k${i}`));
    }
  });
});
