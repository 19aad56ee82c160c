// PostgreSQL for the tests that need one (the Postgres idempotency store).
// Tests call requirePostgres() at the top of their file and skip loudly when
// it is absent (fail with MESH_REQUIRE_SERVICES=1). Every test file uses its
// own random table names and drops them afterwards.

import { randomUUID } from "node:crypto";
import pg from "pg";
import { requireService } from "../support/services.js";

/** POSTGRES_URL says where the test database is (env MESH_POSTGRES_URL). */
export const POSTGRES_URL =
  process.env.MESH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** requirePostgres returns true when POSTGRES_URL answers a query. */
export function requirePostgres(): Promise<boolean> {
  return requireService(
    "postgres",
    async () => {
      const c = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2_000 });
      try {
        await c.connect();
        await c.query("SELECT 1");
        return true;
      } finally {
        await c.end().catch(() => {});
      }
    },
    "install and start one: apt-get install -y postgresql && pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start; createdb -U postgres test",
  );
}

/** TestPostgres is a pool plus table names private to one test file. */
export interface TestPostgres {
  readonly pool: pg.Pool;
  /** tableName returns a fresh table name (dropped by close). */
  tableName(what: string): string;
  /** close drops every table handed out and ends the pool. */
  close(): Promise<void>;
}

/** createTestPostgres opens a pool to the test database. */
export function createTestPostgres(max = 40): TestPostgres {
  const pool = new pg.Pool({ connectionString: POSTGRES_URL, max });
  pool.on("error", () => {});
  const tables: string[] = [];
  const suffix = randomUUID().replaceAll("-", "").slice(0, 12);
  let n = 0;
  return {
    pool,
    tableName(what) {
      const name = `mesh_test_${what}_${suffix}_${++n}`;
      tables.push(name);
      return name;
    },
    async close() {
      for (const t of tables) await pool.query(`DROP TABLE IF EXISTS "${t}"`);
      await pool.end();
    },
  };
}
