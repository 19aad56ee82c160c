// The IdempotencyStore contract, run against every store (memory, Redis).
// `elapse` moves the store's time forward: a fake clock for the memory store,
// a real wait for Redis (so lease times in here are kept short).

import { expect, it } from "vitest";
import type { IdempotencyOutcome } from "../../src/idempotency/outcome.js";
import type { IdempotencyStore } from "../../src/idempotency/store.js";

export interface StoreUnderTest {
  readonly store: IdempotencyStore;
  elapse(ms: number): Promise<void>;
  /**
   * transactional stores (Postgres) differ in two documented ways: the
   * owner's fingerprint is not visible until it commits (in-progress claims
   * report undefined), and a lease that runs out ends the owner's
   * transaction, so a late owner can no longer complete.
   */
  readonly transactional?: boolean;
}

const OK: IdempotencyOutcome = {
  kind: "ok",
  message: new Uint8Array([8, 1]),
  header: [["x-h", "v"]],
  trailer: [],
};

let n = 0;
const freshKey = () => JSON.stringify(["p", "svc/M", `k-${process.pid}-${++n}-${Math.random()}`]);

/** storeContract registers the contract tests for the store `setup` returns. */
export function storeContract(setup: () => StoreUnderTest): void {
  it("claims an absent key once; a second claim sees it in progress with its fingerprint", async () => {
    const { store, transactional } = setup();
    const key = freshKey();
    const first = await store.claim(key, "fp1", 5_000);
    expect(first.state).toBe("claimed");
    const second = await store.claim(key, "fp2", 5_000);
    expect(second).toMatchObject({
      state: "in-progress",
      fingerprint: transactional === true ? undefined : "fp1",
    });
    if (second.state === "in-progress") {
      expect(second.leaseRemainingMs).toBeGreaterThan(4_000);
      expect(second.leaseRemainingMs).toBeLessThanOrEqual(5_000);
    }
  });

  it("lets exactly one of many concurrent claims win", async () => {
    const { store } = setup();
    const key = freshKey();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => store.claim(key, "fp", 5_000)),
    );
    expect(results.filter((r) => r.state === "claimed")).toHaveLength(1);
    expect(results.filter((r) => r.state === "in-progress")).toHaveLength(19);
  });

  it("completes by the owner's token and then answers completed with the record", async () => {
    const { store } = setup();
    const key = freshKey();
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    expect(await store.complete(key, c.token, OK, 60_000)).toBe(true);
    expect(await store.claim(key, "fp", 5_000)).toEqual({
      state: "completed",
      record: { fingerprint: "fp", outcome: OK },
    });
    expect(await store.get(key)).toEqual({
      state: "completed",
      record: { fingerprint: "fp", outcome: OK },
    });
    // A completed record is final: a second completion changes nothing.
    expect(await store.complete(key, c.token, { kind: "unstored", bytes: 1 }, 60_000)).toBe(false);
  });

  it("refuses completion and release by a token that does not own the key", async () => {
    const { store } = setup();
    const key = freshKey();
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    const other = `${c.token.slice(0, -1)}x`;
    expect(await store.complete(key, other, OK, 60_000)).toBe(false);
    expect(await store.release(key, other)).toBe(false);
    expect((await store.get(key))?.state).toBe("in-progress");
  });

  it("releases by the owner's token so the key can be claimed again", async () => {
    const { store } = setup();
    const key = freshKey();
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    expect(await store.release(key, c.token)).toBe(true);
    expect(await store.get(key)).toBeUndefined();
    expect((await store.claim(key, "fp", 5_000)).state).toBe("claimed");
  });

  it("expires an in-progress claim after its lease, so a dead owner's key is taken over", async () => {
    const { store, elapse } = setup();
    const key = freshKey();
    // A lease long enough that a busy host checks it before it ends.
    const dead = await store.claim(key, "fp", 1_000);
    if (dead.state !== "claimed") throw new Error("not claimed");
    expect((await store.claim(key, "fp", 1_000)).state).toBe("in-progress");
    await elapse(1_500);
    const next = await store.claim(key, "fp", 5_000);
    expect(next.state).toBe("claimed");
    // The dead owner, back late, cannot overwrite or free the new owner's claim.
    expect(await store.complete(key, dead.token, OK, 60_000)).toBe(false);
    expect(await store.release(key, dead.token)).toBe(false);
    expect((await store.get(key))?.state).toBe("in-progress");
  });

  it("lets a late owner complete when nobody took its expired claim over (not a transactional store)", async () => {
    const { store, elapse, transactional } = setup();
    const key = freshKey();
    const c = await store.claim(key, "fp", 40);
    if (c.state !== "claimed") throw new Error("not claimed");
    await elapse(80);
    // A transactional store's lease is its transaction: once it has run out,
    // the handler's writes are gone and the outcome must not be stored.
    expect(await store.complete(key, c.token, OK, 60_000)).toBe(transactional !== true);
    expect((await store.get(key))?.state).toBe(transactional === true ? undefined : "completed");
  });

  it("renews a live claim by its owner's token only", async () => {
    const { store, elapse } = setup();
    if (store.renew === undefined) return;
    const key = freshKey();
    // Leases long enough that a busy host renews before the first one ends.
    const c = await store.claim(key, "fp", 1_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    expect(await store.renew(key, `${c.token.slice(0, -1)}x`, 10_000)).toBe(false);
    expect(await store.renew(key, c.token, 10_000)).toBe(true);
    await elapse(1_500);
    // Renewed: still in progress well past the first lease.
    const seen = await store.claim(key, "fp", 5_000);
    expect(seen.state).toBe("in-progress");
    if (seen.state === "in-progress") expect(seen.leaseRemainingMs).toBeGreaterThan(5_000);
    expect(await store.complete(key, c.token, OK, 60_000)).toBe(true);
    // Nothing left to renew once completed.
    expect(await store.renew(key, c.token, 5_000)).toBe(false);
  });

  it("refuses to renew an expired claim, so a taken-over key stays with its new owner", async () => {
    const { store, elapse } = setup();
    if (store.renew === undefined) return;
    const key = freshKey();
    const dead = await store.claim(key, "fp", 40);
    if (dead.state !== "claimed") throw new Error("not claimed");
    await elapse(80);
    expect(await store.renew(key, dead.token, 5_000)).toBe(false);
    const next = await store.claim(key, "fp", 5_000);
    if (next.state !== "claimed") throw new Error("not claimed");
    expect(await store.renew(key, dead.token, 5_000)).toBe(false);
    expect(await store.complete(key, dead.token, OK, 60_000)).toBe(false);
    expect(await store.renew(key, next.token, 5_000)).toBe(true);
  });

  it("forgets a completed record after its TTL", async () => {
    const { store, elapse } = setup();
    const key = freshKey();
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    expect(await store.complete(key, c.token, OK, 1_000)).toBe(true);
    expect((await store.get(key))?.state).toBe("completed");
    await elapse(1_500);
    expect(await store.get(key)).toBeUndefined();
    expect((await store.claim(key, "fp", 5_000)).state).toBe("claimed");
  });

  it("stores error and unstored outcomes unchanged", async () => {
    const { store } = setup();
    for (const outcome of [
      {
        kind: "error",
        code: 5,
        message: "not found ✓",
        details: [{ type: "google.rpc.ErrorInfo", value: new Uint8Array([10, 0]) }],
        metadata: [["x-m", "1"]],
      },
      { kind: "unstored", bytes: 5_000_000 },
    ] satisfies IdempotencyOutcome[]) {
      const key = freshKey();
      const c = await store.claim(key, "fp", 5_000);
      if (c.state !== "claimed") throw new Error("not claimed");
      expect(await store.complete(key, c.token, outcome, 60_000)).toBe(true);
      expect(await store.get(key)).toEqual({
        state: "completed",
        record: { fingerprint: "fp", outcome },
      });
    }
  });
}
