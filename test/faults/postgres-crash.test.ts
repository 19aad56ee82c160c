// Issue 14.2: a crash between the handler's side effect and the stored
// outcome must not run the handler twice when the key is re-sent. With the
// Postgres store the claim, the handler's row and the outcome commit in one
// transaction, so a SIGKILLed owner leaves either nothing or both.

import { afterAll, describe, expect, it } from "vitest";
import { IDEMPOTENCY_REPLAYED_HEADER, keyDigest } from "../../src/idempotency/idempotency-key.js";
import { callOutcome, keyed, ORDER, ordersClient } from "../idempotency/order-fixture.js";
import {
  createTestPostgres,
  POSTGRES_URL,
  requirePostgres,
} from "../idempotency/postgres-fixture.js";
import { type ReplicaProcess, startReplicaProcess } from "./replica-process.js";

const hasPostgres = await requirePostgres();

// Each test starts two tsx processes: seconds apiece on a busy host.
describe.skipIf(!hasPostgres)(
  "faults: Postgres transactional idempotency under SIGKILL",
  {
    timeout: 120_000,
  },
  () => {
    const t = createTestPostgres(4);
    const idemTable = t.tableName("idem");
    const orders = t.tableName("orders");
    const procs: ReplicaProcess[] = [];
    const transports: { close(): Promise<void> }[] = [];
    afterAll(async () => {
      for (const tr of transports) await tr.close();
      for (const p of procs) await p.kill();
      await t.close();
    });

    const start = async (name: string, crash: string) => {
      const p = await startReplicaProcess({
        FAULT_REPLICA: name,
        FAULT_STORE: "postgres",
        FAULT_PG_URL: POSTGRES_URL,
        FAULT_IDEM_TABLE: idemTable,
        FAULT_ORDERS_TABLE: orders,
        FAULT_CRASH: crash,
      });
      procs.push(p);
      // One attempt per call: the test re-sends the key itself, later.
      const { client, transport } = ordersClient(p.address, {
        retry: false,
        idempotencyKeys: false,
      });
      transports.push(transport);
      return { p, client };
    };
    const rows = async (key: string) =>
      (await t.pool.query(`SELECT replica FROM "${orders}" WHERE key = $1`, [key])).rows.map(
        (r) => r.replica as string,
      );

    it("faults: killed between the handler's write and commit, nothing remains; the re-sent key runs once", async () => {
      await t.pool.query(
        `CREATE TABLE IF NOT EXISTS "${orders}" (key text PRIMARY KEY, order_id text NOT NULL, replica text NOT NULL)`,
      );
      const key = "crash-before-commit";
      const dying = await start("dying", "before-commit");
      const call = callOutcome(dying.client.createOrder(ORDER, keyed(key).options));
      await expect
        .poll(() => dying.p.lines.includes(`wrote ${key}`), { timeout: 30_000 })
        .toBe(true);
      await dying.p.kill();
      expect((await call).ok).toBe(false);
      expect(await rows(key)).toEqual([]);

      const fresh = await start("fresh", "none");
      const resent = keyed(key);
      const r = await fresh.client.createOrder(ORDER, resent.options);
      expect(r.order?.servedBy).toBe("fresh");
      expect(resent.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBeNull();
      expect(await rows(key)).toEqual(["fresh"]);
      // And once more: now a replay, still one row.
      const again = keyed(key);
      expect((await fresh.client.createOrder(ORDER, again.options)).order?.id).toBe(r.order?.id);
      expect(again.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
      expect(await rows(key)).toEqual(["fresh"]);
    });

    it("faults: killed after commit, the row and the outcome remain; the re-sent key is a replay", async () => {
      const key = "crash-after-commit";
      const dying = await start("dying-late", "none");
      const call = callOutcome(dying.client.createOrder(ORDER, keyed(key).options));
      await expect
        .poll(() => dying.p.lines.includes(`committed ${keyDigest(key)}`), { timeout: 30_000 })
        .toBe(true);
      await dying.p.kill();
      await call; // answered or cut off by the kill: either way the commit happened
      expect(await rows(key)).toEqual(["dying-late"]);

      const fresh = await start("fresh-late", "none");
      const resent = keyed(key);
      const r = await fresh.client.createOrder(ORDER, resent.options);
      expect(resent.seen.header?.get(IDEMPOTENCY_REPLAYED_HEADER)).toBe("true");
      expect(r.order?.servedBy).toBe("dying-late");
      expect(await rows(key)).toEqual(["dying-late"]);
    });
  },
);
