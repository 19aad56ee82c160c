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
): Promise<void> {
  const c = await store.claim(key, "fp", 1_000);
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
    expect(store.stats()).toEqual({ completed: 2, inProgress: 0, bytes: 802 });
  });

  it("refuses a single record larger than maxBytes and frees its claim", async () => {
    const store = createMemoryIdempotencyStore({ maxBytes: 100, clock: createFakeClock() });
    const c = await store.claim("big", "fp", 1_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    await expect(store.complete("big", c.token, sized(200), 60_000)).rejects.toThrow(
      IdempotencyStoreError,
    );
    expect(store.stats()).toEqual({ completed: 0, inProgress: 0, bytes: 0 });
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
    expect(store.stats()).toEqual({ completed: 0, inProgress: 0, bytes: 0 });
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
