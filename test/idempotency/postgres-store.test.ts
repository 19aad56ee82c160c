import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, describe, expect, it } from "vitest";
import { createOrderService } from "../../examples/order-service.js";
import type { IdempotencyEvent } from "../../src/idempotency/events.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "../../src/idempotency/idempotency-key.js";
import {
  createPostgresIdempotencyStore,
  currentIdempotencyTransaction,
  type PostgresIdempotencyStore,
} from "../../src/idempotency/postgres-store.js";
import { IdempotencyStoreError } from "../../src/idempotency/store.js";
import { callOutcome, keyed, ORDER, ordersClient, startReplica } from "./order-fixture.js";
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
    // The lock went with the rollback: nothing is in progress and the next
    // claim (a retry of the call) takes the key at once.
    expect(await store.get(key)).toBeUndefined();
    const again = await store.claim(key, "fp", 5_000);
    expect(again.state).toBe("claimed");
    if (again.state === "claimed") expect(await store.release(key, again.token)).toBe(true);
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
    expect((store.pool as unknown as { ended: boolean }).ended).toBe(true);
  });

  it("fails with a store error when Postgres is unreachable (closed port)", async () => {
    const store = createPostgresIdempotencyStore({
      connectionString: "postgres://postgres@127.0.0.1:1/test",
    });
    await expect(store.claim("k", "fp", 1_000)).rejects.toThrow(IdempotencyStoreError);
    await store.close();
  });

  it("idempotency: through a mesh server, the handler writes in the call's transaction; duplicates replay; a failed commit is ABORTED and leaves nothing", async () => {
    const store = open("server");
    const orders = t.tableName("orders");
    await t.pool.query(`CREATE TABLE "${orders}" (id text PRIMARY KEY, key text NOT NULL)`);
    const events: IdempotencyEvent[] = [];
    const base = createOrderService("pg");
    let poison = false;
    let executions = 0;
    const replica = await startReplica(
      {
        ...base,
        async createOrder(req, ctx) {
          executions++;
          const res = await base.createOrder(req, ctx);
          const tx = currentIdempotencyTransaction(ctx);
          if (tx === undefined) throw new ConnectError("no transaction", Code.Internal);
          await tx.query(`INSERT INTO "${orders}" (id, key) VALUES ($1, $2)`, [
            res.order?.id,
            ctx.requestHeader.get("idempotency-key"),
          ]);
          await new Promise((r) => setTimeout(r, 100));
          // A swallowed SQL error leaves the transaction aborted: COMMIT rolls back.
          if (poison) await tx.query("SELECT * FROM no_such_table").catch(() => {});
          return res;
        },
      },
      { idempotency: { store, onEvent: (e) => events.push(e) } },
    );
    const { client, transport } = ordersClient(replica.bound.address, {
      retry: false,
      idempotencyKeys: false,
    });
    try {
      const dups = Array.from({ length: 4 }, () => keyed("pg-server"));
      const results = await Promise.all(dups.map((d) => client.createOrder(ORDER, d.options)));
      expect(new Set(results.map((r) => r.order?.id)).size).toBe(1);
      expect(executions).toBe(1);
      expect(
        dups.filter((d) => d.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER) === "true"),
      ).toHaveLength(3);
      expect((await t.pool.query(`SELECT id FROM "${orders}"`)).rows).toEqual([
        { id: results[0]?.order?.id },
      ]);
      // The handler gets no transaction without a key: it must not pretend.
      const keyless = await callOutcome(client.createOrder(ORDER));
      expect(!keyless.ok && keyless.error.code).toBe(Code.Internal);

      poison = true;
      const failed = await callOutcome(client.createOrder(ORDER, keyed("pg-poison").options));
      expect(!failed.ok && failed.error.code).toBe(Code.Aborted);
      expect(!failed.ok && failed.error.metadata.get("grpc-retry-pushback-ms")).toBe("1000");
      expect(events.some((e) => e.type === "rolled-back")).toBe(true);
      expect(
        (await t.pool.query(`SELECT id FROM "${orders}" WHERE key = 'pg-poison'`)).rowCount,
      ).toBe(0);
      poison = false;
      // The rolled-back key is free: the retry runs and commits.
      await client.createOrder(ORDER, keyed("pg-poison").options);
      expect(
        (await t.pool.query(`SELECT id FROM "${orders}" WHERE key = 'pg-poison'`)).rowCount,
      ).toBe(1);
    } finally {
      await transport.close();
      await replica.server.close({ graceMs: 0 });
    }
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
