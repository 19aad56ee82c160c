import { afterAll, describe, expect, it } from "vitest";
import {
  createPostgresIdempotencyStore,
  type PostgresIdempotencyStore,
} from "../../src/idempotency/postgres-store.js";
import { IdempotencyStoreError } from "../../src/idempotency/store.js";
import { createTestPostgres, POSTGRES_URL, requirePostgres } from "./postgres-fixture.js";
import { storeContract } from "./store-contract.js";

const hasPostgres = await requirePostgres();

describe.skipIf(!hasPostgres)("idempotency postgres store", () => {
  const t = createTestPostgres();
  const stores: PostgresIdempotencyStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close();
    await t.close();
  });
  const open = (what = "contract") => {
    const store = createPostgresIdempotencyStore({ pool: t.pool, table: t.tableName(what) });
    stores.push(store);
    return store;
  };

  describe("contract", () => {
    let store: PostgresIdempotencyStore | undefined;
    storeContract(() => {
      store ??= open();
      // Leases end on the server (idle_in_transaction_session_timeout): allow
      // it a moment past the lease to end the session.
      return {
        store,
        transactional: true,
        elapse: (ms) => new Promise((r) => setTimeout(r, ms + 150)),
      };
    });
  });

  it("creates its table on first use and commits the handler's writes with the outcome", async () => {
    const store = open("tx");
    const orders = t.tableName("orders");
    await t.pool.query(`CREATE TABLE "${orders}" (id text PRIMARY KEY)`);
    const key = JSON.stringify(["p", "svc/M", "tx-1"]);
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    const tx = c.transaction as import("pg").PoolClient;
    await tx.query(`INSERT INTO "${orders}" (id) VALUES ('o-1')`);
    // Uncommitted: invisible to everyone else, and the key is in progress.
    expect((await t.pool.query(`SELECT id FROM "${orders}"`)).rowCount).toBe(0);
    expect(await store.get(key)).toMatchObject({ state: "in-progress" });
    expect(await store.complete(key, c.token, { kind: "unstored", bytes: 1 }, 60_000)).toBe(true);
    expect((await t.pool.query(`SELECT id FROM "${orders}"`)).rowCount).toBe(1);
    expect(await store.get(key)).toMatchObject({ state: "completed" });
  });

  it("rolls the handler's writes back on release, and on a stored error keeps the error only", async () => {
    const store = open("rollback");
    const orders = t.tableName("orders");
    await t.pool.query(`CREATE TABLE "${orders}" (id text PRIMARY KEY)`);
    const k1 = JSON.stringify(["p", "svc/M", "rb-1"]);
    const c1 = await store.claim(k1, "fp", 5_000);
    if (c1.state !== "claimed") throw new Error("not claimed");
    await (c1.transaction as import("pg").PoolClient).query(
      `INSERT INTO "${orders}" (id) VALUES ('released')`,
    );
    expect(await store.release(k1, c1.token)).toBe(true);
    const k2 = JSON.stringify(["p", "svc/M", "rb-2"]);
    const c2 = await store.claim(k2, "fp", 5_000);
    if (c2.state !== "claimed") throw new Error("not claimed");
    await (c2.transaction as import("pg").PoolClient).query(
      `INSERT INTO "${orders}" (id) VALUES ('failed')`,
    );
    const error = {
      kind: "error",
      code: 9,
      message: "no stock",
      details: [],
      metadata: [],
    } as const;
    expect(await store.complete(k2, c2.token, error, 60_000)).toBe(true);
    expect((await t.pool.query(`SELECT id FROM "${orders}"`)).rowCount).toBe(0);
    expect(await store.get(k2)).toEqual({
      state: "completed",
      record: { fingerprint: "fp", outcome: error },
    });
    expect(await store.get(k1)).toBeUndefined();
  });

  it("resolves false, storing nothing, when the handler left the transaction aborted", async () => {
    const store = open("aborted");
    const key = JSON.stringify(["p", "svc/M", "aborted"]);
    const c = await store.claim(key, "fp", 5_000);
    if (c.state !== "claimed") throw new Error("not claimed");
    await expect(
      (c.transaction as import("pg").PoolClient).query("SELECT * FROM no_such_table_here"),
    ).rejects.toThrow(/no_such_table_here/);
    expect(await store.complete(key, c.token, { kind: "unstored", bytes: 1 }, 60_000)).toBe(false);
    expect(await store.get(key)).toBeUndefined();
  });

  it("sweeps expired records", async () => {
    const store = open("sweep");
    for (const i of [1, 2, 3]) {
      const key = JSON.stringify(["p", "svc/M", `sweep-${i}`]);
      const c = await store.claim(key, "fp", 5_000);
      if (c.state !== "claimed") throw new Error("not claimed");
      await store.complete(key, c.token, { kind: "unstored", bytes: 1 }, i === 3 ? 60_000 : 1);
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(await store.sweep()).toBe(2);
    expect((await t.pool.query(`SELECT key FROM ${store.table}`)).rowCount).toBe(1);
  });

  it("opens its own pool from a connection string and ends it on close", async () => {
    const table = t.tableName("own");
    const store = createPostgresIdempotencyStore({ connectionString: POSTGRES_URL, table });
    const key = JSON.stringify(["p", "svc/M", "own"]);
    expect((await store.claim(key, "fp", 1_000)).state).toBe("claimed");
    await store.close();
    expect(store.pool.ended).toBe(true);
  });

  it("fails with a store error when Postgres is unreachable (closed port)", async () => {
    const store = createPostgresIdempotencyStore({
      connectionString: "postgres://postgres@127.0.0.1:1/test",
    });
    await expect(store.claim("k", "fp", 1_000)).rejects.toThrow(IdempotencyStoreError);
    await store.close();
  });

  it("validates its options", () => {
    expect(() => createPostgresIdempotencyStore({} as never)).toThrow(TypeError);
    expect(() =>
      createPostgresIdempotencyStore({ connectionString: POSTGRES_URL, table: 'x"; DROP' }),
    ).toThrow(/table "x\\"; DROP" must be an identifier/);
    expect(() =>
      createPostgresIdempotencyStore({ connectionString: POSTGRES_URL, sweepIntervalMs: 0 }),
    ).toThrow(RangeError);
  });
});
