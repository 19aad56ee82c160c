import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  createMemoryIdempotencyStore,
  type MemoryIdempotencyStore,
} from "../../src/idempotency/memory-store.js";
import type { IdempotencyOutcome } from "../../src/idempotency/outcome.js";
import { IdempotencyStoreError } from "../../src/idempotency/store.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { storeContract } from "./store-contract.js";

describe("idempotency memory store: contract", () => {
  storeContract(() => {
    const clock = createFakeClock(1_000);
    return {
      store: createMemoryIdempotencyStore({ clock }),
      elapse: async (ms) => clock.advance(ms),
    };
  });
});

const sized = (bytes: number): IdempotencyOutcome => ({
  kind: "ok",
  message: new Uint8Array(bytes),
  header: [],
  trailer: [],
});

async function put(
  store: MemoryIdempotencyStore,
  key: string,
  outcome: IdempotencyOutcome = sized(10),
  ttlMs = 60_000,
  fingerprint = "fp",
): Promise<void> {
  const c = await store.claim(key, fingerprint, 1_000);
  if (c.state !== "claimed") throw new Error(`${key} not claimed: ${c.state}`);
  expect(await store.complete(key, c.token, outcome, ttlMs)).toBe(true);
}

describe("idempotency memory store: bounds (LRU) and TTL on a fake clock", () => {
  it("evicts the least recently used completed record beyond maxEntries", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ maxEntries: 3, clock });
    await put(store, "a");
    await put(store, "b");
    await put(store, "c");
    // A replay of "a" makes it the most recent; "b" is now the oldest.
    expect((await store.claim("a", "fp", 1_000)).state).toBe("completed");
    await put(store, "d");
    expect(await store.get("b")).toBeUndefined();
    for (const k of ["a", "c", "d"]) expect((await store.get(k))?.state, k).toBe("completed");
    expect(store.stats()).toMatchObject({ completed: 3, inProgress: 0 });
  });

  it("keeps exact LRU order over many evictions, replays, expiries and an emptied store", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ maxEntries: 4, clock });
    // The reference: keys from least to most recently used.
    let lru: string[] = [];
    const live = async () => {
      for (const k of lru) expect((await store.get(k))?.state, k).toBe("completed");
      expect(store.stats().completed).toBe(lru.length);
    };
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 40; i++) {
        const key = `${round}-${i}`;
        await put(store, key, sized(10), 1_000);
        lru = [...lru.filter((k) => k !== key), key].slice(-4);
        if (i % 3 === 0 && lru.length > 1) {
          // Replaying the oldest makes it the most recent.
          const oldest = lru[0] as string;
          expect((await store.claim(oldest, "fp", 1_000)).state).toBe("completed");
          lru = [...lru.slice(1), oldest];
        }
        await live();
      }
      // Every record expires: the next claims find an empty store.
      clock.advance(1_001);
      for (const k of lru) expect(await store.get(k), k).toBeUndefined();
      for (const k of lru) expect((await store.claim(k, "fp", 1_000)).state).toBe("claimed");
      for (const k of lru) await store.release(k, "not the token");
      clock.advance(1_001);
      lru = [];
    }
  });

  it("evicts least recently used records until the bytes fit maxBytes", async () => {
    const store = createMemoryIdempotencyStore({ maxBytes: 1_000, clock: createFakeClock() });
    await put(store, "a", sized(300));
    await put(store, "b", sized(300));
    await put(store, "c", sized(300));
    expect(store.stats().bytes).toBe(903);
    await put(store, "d", sized(500));
    expect(await store.get("a")).toBeUndefined();
    expect(await store.get("b")).toBeUndefined();
    expect((await store.get("c"))?.state).toBe("completed");
    expect(store.stats()).toEqual({ completed: 2, inProgress: 0, bytes: 802, evicted: 2 });
  });

  it("refuses a single record larger than maxBytes and frees its claim", async () => {
    const store = createMemoryIdempotencyStore({ maxBytes: 100, clock: createFakeClock() });
    const c = await store.claim("big", "fp", 1_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    await expect(store.complete("big", c.token, sized(200), 60_000)).rejects.toThrow(
      IdempotencyStoreError,
    );
    expect(store.stats()).toEqual({ completed: 0, inProgress: 0, bytes: 0, evicted: 0 });
  });

  it("never evicts in-progress claims; when they fill maxEntries a claim fails", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ maxEntries: 2, clock });
    await put(store, "done");
    expect((await store.claim("p1", "fp", 1_000)).state).toBe("claimed");
    expect((await store.claim("p2", "fp", 1_000)).state).toBe("claimed");
    // The completed record made room; the in-progress ones stayed.
    expect(await store.get("done")).toBeUndefined();
    await expect(store.claim("p3", "fp", 1_000)).rejects.toThrow(/full: 2 calls in progress/);
    // Once their leases end, the space is free again.
    clock.advance(1_000);
    expect((await store.claim("p3", "fp", 1_000)).state).toBe("claimed");
  });

  it("replays every record's bytes when empty responses are stored between others", async () => {
    // google.protobuf.Empty answers are empty messages: entries of 0 bytes in the slab.
    // maxBytes 64 KiB: 4 KiB slab chunks, so chunks empty out and are reused often.
    const store = createMemoryIdempotencyStore({
      maxEntries: 40,
      maxBytes: 64 * 1024,
      clock: createFakeClock(),
    });
    const bytesOf = (i: number) => Uint8Array.from({ length: 300 }, (_, j) => (i * 7 + j) & 0xff);
    const live: number[] = [];
    for (let i = 0; i < 2_000; i++) {
      const outcome: IdempotencyOutcome =
        i % 3 === 0 ? sized(0) : { kind: "ok", message: bytesOf(i), header: [], trailer: [] };
      await put(store, `k${i}`, outcome);
      live.push(i);
      if (live.length > 40) live.shift();
      if (i % 50 === 49) {
        for (const j of live) {
          const got = await store.get(`k${j}`);
          if (got?.state !== "completed") throw new Error(`k${j} is ${got?.state}`);
          const message = got.record.outcome.kind === "ok" ? got.record.outcome.message : undefined;
          expect(message, `k${j}`).toEqual(j % 3 === 0 ? new Uint8Array(0) : bytesOf(j));
        }
      }
    }
  });

  it("counts records evicted for room before their TTL, not expired ones taken for room", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ maxEntries: 2, clock });
    await put(store, "a", sized(1), 1_000);
    await put(store, "b", sized(1), 60_000);
    clock.advance(1_000);
    // "a" has expired but is still held: taking it for room is not an eviction.
    await put(store, "c");
    expect(store.stats()).toMatchObject({ completed: 2, evicted: 0 });
    await put(store, "d");
    expect(await store.get("b")).toBeUndefined();
    expect(store.stats()).toMatchObject({ completed: 2, evicted: 1 });
  });

  it("holds 16 MiB of outcomes by default, then evicts the oldest", async () => {
    const store = createMemoryIdempotencyStore({ clock: createFakeClock() });
    const mib = 1024 * 1024;
    // Each record is its outcome plus its key's length: 15 fit beside the keys, the 16th does not.
    for (let i = 0; i < 15; i++) await put(store, `k${i}`, sized(mib));
    expect(store.stats()).toMatchObject({ completed: 15, evicted: 0 });
    await put(store, "k15", sized(mib));
    expect(store.stats()).toMatchObject({ completed: 15, evicted: 1 });
    expect(await store.get("k0")).toBeUndefined();
    expect((await store.get("k15"))?.state).toBe("completed");
    expect(store.stats().bytes).toBeLessThanOrEqual(16 * mib);
  });

  it("expires completed records after their own TTL", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ clock });
    await put(store, "short", sized(1), 1_000);
    await put(store, "long", sized(1), 10_000);
    clock.advance(999);
    expect((await store.get("short"))?.state).toBe("completed");
    clock.advance(1);
    expect(await store.get("short")).toBeUndefined();
    expect((await store.get("long"))?.state).toBe("completed");
    clock.advance(9_000);
    expect(await store.get("long")).toBeUndefined();
    expect(store.stats()).toEqual({ completed: 0, inProgress: 0, bytes: 0, evicted: 0 });
  });

  it("reports the remaining lease of an in-progress claim", async () => {
    const clock = createFakeClock();
    const store = createMemoryIdempotencyStore({ clock });
    await store.claim("k", "fp", 1_000);
    clock.advance(400);
    expect(await store.get("k")).toEqual({
      state: "in-progress",
      fingerprint: "fp",
      leaseRemainingMs: 600,
    });
  });

  it("validates its options", () => {
    expect(() => createMemoryIdempotencyStore({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => createMemoryIdempotencyStore({ maxEntries: 1.5 })).toThrow(RangeError);
    expect(() => createMemoryIdempotencyStore({ maxBytes: 0 })).toThrow(RangeError);
  });
});

describe("idempotency memory store: stored messages stay exact", () => {
  const message = (key: string, length: number) =>
    Uint8Array.from({ length }, (_, i) => (key.charCodeAt(key.length - 1) * 7 + i) & 0xff);
  const outcome = (key: string, length: number): IdempotencyOutcome => ({
    kind: "ok",
    message: message(key, length),
    header: [["x-key", key]],
    trailer: [["x-t", "1"]],
  });
  const replayed = async (store: MemoryIdempotencyStore, key: string) => {
    const got = await store.get(key);
    if (got?.state !== "completed") throw new Error(`${key}: ${got?.state}`);
    return got.record.outcome;
  };

  it("replays each record's own bytes through churn, pinned records and compaction", async () => {
    // maxBytes 64 KiB: 4 KiB chunks; records of 100-1100 bytes. One record in
    // eight of the first 320 is kept alive by replays, so they pin a chunk
    // each while the records around them are evicted: the store compacts.
    const store = createMemoryIdempotencyStore({ maxBytes: 64 * 1024, clock: createFakeClock() });
    const sizeOf = (i: number) => 100 + ((i * 397) % 1000);
    const fingerprintOf = (i: number) =>
      i % 2 === 1 ? createHash("sha256").update(`k${i}`).digest("hex") : `fp-${i}`;
    const pinned: number[] = [];
    for (let i = 0; i < 3_000; i++) {
      const k = `k${i}`;
      // Odd records have a SHA-256 fingerprint (kept in the slab), even ones another.
      await put(store, k, outcome(k, sizeOf(i)), 60_000, fingerprintOf(i));
      if (i < 320 && i % 8 === 0) pinned.push(i);
      // A replay makes a pinned record the most recent: it is not evicted.
      if (i % 10 === 0) {
        for (const p of pinned) {
          expect(await replayed(store, `k${p}`), `k${p} at ${i}`).toEqual(
            outcome(`k${p}`, sizeOf(p)),
          );
          expect((await store.claim(`k${p}`, "fp", 1_000)).state).toBe("completed");
        }
      }
    }
    expect(store.stats().bytes).toBeLessThanOrEqual(64 * 1024);
    // Every record still held replays its own bytes.
    let held = 0;
    for (let i = 0; i < 3_000; i++) {
      const got = await store.get(`k${i}`);
      if (got?.state !== "completed") continue;
      held++;
      expect(got.record).toEqual({
        fingerprint: fingerprintOf(i),
        outcome: outcome(`k${i}`, sizeOf(i)),
      });
    }
    expect(held).toBeGreaterThan(pinned.length);
  });

  it("keeps its own copy of a message: the caller may reuse its buffer", async () => {
    const store = createMemoryIdempotencyStore({ clock: createFakeClock() });
    const given = outcome("a", 64);
    await put(store, "a", given);
    if (given.kind === "ok") given.message.fill(0);
    expect(await replayed(store, "a")).toEqual(outcome("a", 64));
  });

  it("a replayed message stays intact after its record is evicted", async () => {
    const store = createMemoryIdempotencyStore({ maxEntries: 4, clock: createFakeClock() });
    await put(store, "a", outcome("a", 64));
    const early = await replayed(store, "a");
    for (let i = 0; i < 100; i++) await put(store, `k${i}`, outcome(`k${i}`, 64));
    expect(await store.get("a")).toBeUndefined();
    expect(early).toEqual(outcome("a", 64));
  });

  it("keeps messages too large for the slab, and error outcomes, as they are", async () => {
    const store = createMemoryIdempotencyStore({ clock: createFakeClock() });
    const big = outcome("b", 200 * 1024);
    await put(store, "b", big);
    const err: IdempotencyOutcome = {
      kind: "error",
      code: Code.FailedPrecondition,
      message: "precondition: x",
      details: [],
      metadata: [["x-why", "y"]],
    };
    await put(store, "e", err);
    expect(await replayed(store, "b")).toEqual(outcome("b", 200 * 1024));
    expect(await replayed(store, "e")).toEqual(err);
  });
});
