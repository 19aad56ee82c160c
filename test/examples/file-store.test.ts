import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { stat, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  createFileIdempotencyStore,
  type FileIdempotencyStore,
} from "../../src/idempotency/file-store.js";
import type { IdempotencyOutcome } from "../../src/idempotency/outcome.js";
import { formatRecordKey, IdempotencyStoreError } from "../../src/idempotency/store.js";
import { storeContract } from "../idempotency/store-contract.js";

const dirs: string[] = [];
const freshDir = () => {
  const d = mkdtempSync(join(tmpdir(), "mesh-file-store-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const OK: IdempotencyOutcome = {
  kind: "ok",
  message: new Uint8Array([8, 1]),
  header: [["x-h", "v"]],
  trailer: [],
};

let n = 0;
const key = () =>
  formatRecordKey("anonymous", "example.orders.v1.OrderService/CreateOrder", `k${++n}`);

/** fakeNow is a wall clock that moves only when told. */
function fakeNow(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

async function claimed(store: FileIdempotencyStore, k: string, leaseMs = 5_000): Promise<string> {
  const c = await store.claim(k, "fp", leaseMs);
  if (c.state !== "claimed") throw new Error(`${k} not claimed: ${c.state}`);
  return c.token;
}

describe("file idempotency store: contract", () => {
  storeContract(() => {
    const clock = fakeNow();
    return {
      store: createFileIdempotencyStore({ dir: freshDir(), now: clock.now }),
      elapse: async (ms) => clock.advance(ms),
    };
  });
});

describe("file idempotency store", () => {
  it("file idempotency store: claim, complete, replay through <sha256(recordKey)>.json", async () => {
    const dir = freshDir();
    const store = createFileIdempotencyStore({ dir });
    const k = key();
    const token = await claimed(store, k);
    const file = `${createHash("sha256").update(k).digest("hex")}.json`;
    expect(store.pathFor(k)).toBe(join(dir, file));
    expect(readdirSync(dir)).toEqual([file]);
    expect(await store.complete(k, token, OK, 60_000)).toBe(true);
    // Every later claim is a replay of the stored outcome, byte for byte.
    for (let i = 0; i < 3; i++) {
      expect(await store.claim(k, "fp", 5_000)).toEqual({
        state: "completed",
        record: { fingerprint: "fp", outcome: OK },
      });
    }
    // No temp files or locks are left behind.
    expect(readdirSync(dir)).toEqual([file]);
  });

  it("file idempotency store: release deletes the claim only for the owner's token", async () => {
    const store = createFileIdempotencyStore({ dir: freshDir() });
    const k = key();
    const token = await claimed(store, k);
    expect(await store.release(k, `${token}x`)).toBe(false);
    expect(await store.release(k, token)).toBe(true);
    expect(await store.release(k, token)).toBe(false);
    expect(await store.get(k)).toBeUndefined();
    await claimed(store, k);
  });

  it("file idempotency store: an expired lease is taken over on real time, once", async () => {
    const store = createFileIdempotencyStore({ dir: freshDir() });
    const k = key();
    const dead = await claimed(store, k, 30);
    await new Promise((r) => setTimeout(r, 60));
    // Many takers race for the expired claim: exactly one wins.
    const results = await Promise.all(
      Array.from({ length: 10 }, () => store.claim(k, "fp", 5_000)),
    );
    const winners = results.filter((r) => r.state === "claimed");
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => r.state === "in-progress")).toHaveLength(9);
    // The old owner can neither complete nor release the new owner's claim.
    expect(await store.complete(k, dead, OK, 60_000)).toBe(false);
    expect(await store.release(k, dead)).toBe(false);
    const winner = winners[0];
    if (winner?.state !== "claimed") throw new Error("no winner");
    expect(await store.complete(k, winner.token, OK, 60_000)).toBe(true);
  });

  it("file idempotency store: a completed record past its TTL is claimable again", async () => {
    const clock = fakeNow();
    const store = createFileIdempotencyStore({ dir: freshDir(), now: clock.now });
    const k = key();
    expect(await store.complete(k, await claimed(store, k), OK, 1_000)).toBe(true);
    clock.advance(999);
    expect((await store.claim(k, "fp", 5_000)).state).toBe("completed");
    clock.advance(1);
    expect(await store.get(k)).toBeUndefined();
    await claimed(store, k);
  });

  it("file idempotency store: two instances on one dir share claims and outcomes", async () => {
    const dir = freshDir();
    const a = createFileIdempotencyStore({ dir });
    const b = createFileIdempotencyStore({ dir });
    const k = key();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).claim(k, "fp", 5_000)),
    );
    expect(results.filter((r) => r.state === "claimed")).toHaveLength(1);
    const owner = results.find((r) => r.state === "claimed");
    if (owner?.state !== "claimed") throw new Error("no owner");
    expect((await b.claim(k, "fp", 5_000)).state).toBe("in-progress");
    expect(await a.complete(k, owner.token, OK, 60_000)).toBe(true);
    expect(await b.get(k)).toEqual({
      state: "completed",
      record: { fingerprint: "fp", outcome: OK },
    });
  });

  it("file idempotency store: two processes racing for 200 keys claim each exactly once", async () => {
    const dir = freshDir();
    const count = 200;
    const prefix = `race-${process.pid}`;
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(import.meta.dirname, "file-store-child.ts"),
        dir,
        prefix,
        String(count),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      out += d;
    });
    const waitFor = async (text: string) => {
      while (!out.includes(text)) {
        if (child.exitCode !== null) throw new Error(`child exited ${child.exitCode}: ${out}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    await waitFor("ready\n");
    const store = createFileIdempotencyStore({ dir });
    const mine: string[] = [];
    // Both start at the same wall-clock time, all claims at once.
    const startAt = Date.now() + 200;
    child.stdin.write(`${startAt}\n`);
    await new Promise((r) => setTimeout(r, startAt - Date.now()));
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = next++; i < count; i = next++) {
          const k = `${prefix}-${i}`;
          const c = await store.claim(k, "fp", 10_000);
          if (c.state !== "claimed") continue;
          mine.push(k);
          expect(await store.complete(k, c.token, OK, 60_000)).toBe(true);
        }
      }),
    );
    expect(await exited).toBe(0);
    const line = out.split("\n").find((l) => l.startsWith("{")) ?? "{}";
    const theirs = JSON.parse(line) as { claimed: string[]; completed: string[] };
    expect(mine.length + theirs.claimed.length).toBe(count);
    expect(new Set([...mine, ...theirs.claimed]).size).toBe(count);
    expect(theirs.completed.sort()).toEqual(theirs.claimed.sort());
    // Every key ended completed, whoever ran it.
    for (let i = 0; i < count; i++) {
      expect((await store.get(`${prefix}-${i}`))?.state).toBe("completed");
    }
  });

  it("file idempotency store: a lock left by a killed process is broken, not waited on", async () => {
    const dir = freshDir();
    const store = createFileIdempotencyStore({ dir, lockTimeoutMs: 500, lockStaleMs: 60_000 });
    const k = key();
    const token = await claimed(store, k);
    // A holder that died mid-operation: its pid no longer exists.
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.on("exit", r));
    await writeFile(`${store.pathFor(k)}.lock`, `${dead.pid}\n${hostname()}\nx\n`);
    // Waiting on the lock would fail with IdempotencyStoreError after lockTimeoutMs.
    expect(await store.complete(k, token, OK, 60_000)).toBe(true);
  });

  it("file idempotency store: a live lock past lockTimeoutMs fails with IdempotencyStoreError", async () => {
    const store = createFileIdempotencyStore({ dir: freshDir(), lockTimeoutMs: 100 });
    const k = key();
    const token = await claimed(store, k);
    // Held by this (live) process, and fresh.
    await writeFile(`${store.pathFor(k)}.lock`, `${process.pid}\nsomewhere-else\nx\n`);
    await expect(store.release(k, token)).rejects.toBeInstanceOf(IdempotencyStoreError);
    // Once it is old enough it is stale and broken.
    const old = new Date(Date.now() - 5_000);
    await utimes(`${store.pathFor(k)}.lock`, old, old);
    expect(await store.release(k, token)).toBe(true);
  });

  it("file idempotency store: a corrupt record is an IdempotencyStoreError", async () => {
    const store = createFileIdempotencyStore({ dir: freshDir() });
    const k = key();
    await claimed(store, k);
    await writeFile(store.pathFor(k), "{not json");
    await expect(store.get(k)).rejects.toBeInstanceOf(IdempotencyStoreError);
    await expect(store.claim(k, "fp", 5_000)).rejects.toBeInstanceOf(IdempotencyStoreError);
  });

  it("file idempotency store: sweep deletes expired records and old leftovers", async () => {
    const clock = fakeNow(Date.now());
    const dir = freshDir();
    const store = createFileIdempotencyStore({ dir, now: clock.now });
    const expired = key();
    const kept = key();
    await store.complete(expired, await claimed(store, expired), OK, 1_000);
    await store.complete(kept, await claimed(store, kept), OK, 60_000);
    const leftover = join(dir, "abc.json.1.x.tmp");
    await writeFile(leftover, "partial");
    const old = new Date(Date.now() - 120_000);
    await utimes(leftover, old, old);
    clock.advance(2_000);
    expect(await store.sweep()).toBe(2);
    expect(readdirSync(dir)).toEqual([store.pathFor(kept).slice(dir.length + 1)]);
    expect((await stat(store.pathFor(kept))).isFile()).toBe(true);
  });

  it("file idempotency store: rejects bad options", () => {
    expect(() => createFileIdempotencyStore({ dir: "" })).toThrow(TypeError);
    expect(() => createFileIdempotencyStore({ dir: freshDir(), lockTimeoutMs: 0 })).toThrow(
      RangeError,
    );
  });
});
