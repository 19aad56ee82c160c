import { createHash } from "node:crypto";
import type { ContextValues } from "@connectrpc/connect";
import { type Clock, systemClock } from "../clock.js";
import { newClaimToken, tokenFingerprint } from "./claim-token.js";
import { idempotencyTransactionKey } from "./idempotency-transaction.js";
import { decodeOutcome, encodeOutcome, OutcomeDecodeError } from "./outcome.js";
import type { PostgresPool, PostgresPoolClient } from "./postgres-client.js";
import {
  type ClaimResult,
  type IdempotencyStore,
  IdempotencyStoreError,
  type StoredState,
} from "./store.js";

/**
 * PostgresIdempotencyStoreOptions configures createPostgresIdempotencyStore.
 * Give either `pool` (a `pg` Pool you own and end) or `connectionString`
 * (the store loads `pg`, opens a pool and ends it on `close()`).
 * Defaults are in POSTGRES_STORE_DEFAULTS.
 */
export interface PostgresIdempotencyStoreOptions {
  /**
   * pool is a `pg` Pool to use as is. Every keyed call in flight holds one of
   * its connections for the handler's whole run (the transaction), so size
   * `max` for your concurrent keyed calls plus a few for duplicates' checks.
   */
  readonly pool?: PostgresPool;
  /** connectionString opens a pool (`max` 20, 5 s connection timeout) from a `postgres://` URL. */
  readonly connectionString?: string;
  /** table holds the completed records: `name` or `schema.name`; created on first use. */
  readonly table?: string;
  /** sweepIntervalMs is how often claims also delete up to 1_000 expired records; default 60_000. */
  readonly sweepIntervalMs?: number;
  /** clock times the sweeps. Leases and TTLs use the database's clock (one for all replicas). */
  readonly clock?: Clock;
}

/** POSTGRES_STORE_DEFAULTS are the defaults documented on PostgresIdempotencyStoreOptions. */
export const POSTGRES_STORE_DEFAULTS = Object.freeze({
  table: "connect_mesh_idempotency",
  sweepIntervalMs: 60_000,
});

/** PostgresIdempotencyStore is a transactional IdempotencyStore in PostgreSQL. */
export interface PostgresIdempotencyStore extends IdempotencyStore {
  readonly transactional: true;
  /** pool is the pool in use. */
  readonly pool: PostgresPool;
  /** table is the quoted table name in use (for tests and operations). */
  readonly table: string;
  /** sweep deletes up to `limit` expired records now; resolves with how many. */
  sweep(limit?: number): Promise<number>;
  /** close ends the pool if the store opened it, after rolling back claims still open. */
  close(): Promise<void>;
}

/**
 * currentIdempotencyTransaction returns, inside a handler (or an interceptor
 * after the idempotency one), the `pg` client of the keyed call's
 * transaction opened by a Postgres idempotency store: write through it, and
 * the writes commit together with the stored outcome, or not at all. Do not
 * COMMIT, ROLLBACK or release it; a SQL error in it fails the call (the
 * transaction is aborted) unless you use your own SAVEPOINT. Undefined when
 * the call has no key, another store handles it, or it runs unprotected
 * (`failOpen` after a store failure): decide whether to write without it.
 */
export function currentIdempotencyTransaction(ctx: {
  readonly values: ContextValues;
}): PostgresPoolClient | undefined {
  const v = ctx.values.get(idempotencyTransactionKey);
  return typeof v === "object" && v !== null && handedOut.has(v)
    ? (v as PostgresPoolClient)
    : undefined;
}

// Clients inside an open claim, so that currentIdempotencyTransaction never
// returns something else that landed in the context value.
const handedOut = new WeakSet<object>();

interface OpenClaim {
  readonly recordKey: string;
  readonly client: PostgresPoolClient;
  broken: boolean;
}

const SAVEPOINT = "connect_mesh_handler";
// SQLSTATEs after which the transaction is gone: not an outage, a lost claim.
// 25P02 in failed transaction, 25P03 idle-in-transaction timeout (the lease),
// 57P01/57P02 terminated by an administrator or a crash of the server.
const LOST_CLAIM_CODES = new Set(["25P02", "25P03", "57P01", "57P02"]);

/**
 * createPostgresIdempotencyStore keeps idempotency records in PostgreSQL and
 * runs each keyed call in ONE transaction with its claim and its outcome, so
 * that the handler's own writes (through currentIdempotencyTransaction) and
 * the stored outcome commit together: a crash leaves either nothing (the key
 * is free, a re-send runs the handler) or both (a re-send replays). That is
 * exactly-once for writes in the same database; the other stores give
 * at-most-once per completed outcome.
 *
 * How a claim works: take a pooled connection, BEGIN, set
 * `idle_in_transaction_session_timeout` to the lease, and
 * `pg_try_advisory_xact_lock` on a 62-bit hash of the table and record key.
 * The lock is the claim and its lease: the backend holds it until the
 * transaction ends, and Postgres ends it when the owner commits, rolls back,
 * its connection drops (a SIGKILLed owner: at once), or it stays idle in the
 * transaction longer than the lease (a hung owner: the commit then fails, so
 * its writes never land). A duplicate that cannot take the lock sees
 * `in-progress` and polls; whoever takes it next re-reads the records table
 * after the lock (a fresh snapshot), so an owner's committed outcome is
 * always seen. There is no renewal: a live owner's connection is its
 * heartbeat, so the lease is the call's deadline plus margin (as a hung
 * owner's bound). The owner's fingerprint is invisible until it commits
 * (`fingerprint` undefined): a key reused with another payload gets
 * FAILED_PRECONDITION once the first call completes.
 *
 * Completion upserts the record, after `ROLLBACK TO SAVEPOINT` for a stored
 * error (a failed handler's writes are undone, its error is kept), and
 * commits. A commit that fails (or an aborted transaction that COMMIT turns
 * into ROLLBACK) resolves false: nothing was written, and the interceptor
 * fails the call with ABORTED. An interrupted COMMIT is ambiguous; the
 * retry's claim finds out (replay if it committed, run if not). `release`
 * rolls back. Only completed records are rows: `key text primary key,
 * fingerprint, outcome, expires_at` (the database's `now()`), with an index
 * on expires_at; claims sweep expired rows every `sweepIntervalMs`.
 *
 * `pg` is an optional peer dependency: it is imported only when you give a
 * `connectionString`.
 */
export function createPostgresIdempotencyStore(
  options: PostgresIdempotencyStoreOptions,
): PostgresIdempotencyStore {
  if ((options?.pool === undefined) === (options?.connectionString === undefined)) {
    throw new TypeError(
      "createPostgresIdempotencyStore: give exactly one of pool and connectionString",
    );
  }
  if (options.pool !== undefined && typeof options.pool.connect !== "function") {
    throw new TypeError("pool must be a pg Pool");
  }
  if (options.connectionString !== undefined && typeof options.connectionString !== "string") {
    throw new TypeError(`connectionString ${String(options.connectionString)} must be a string`);
  }
  const tableName = options.table ?? POSTGRES_STORE_DEFAULTS.table;
  if (
    typeof tableName !== "string" ||
    !/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/.test(tableName)
  ) {
    throw new RangeError(
      `table ${JSON.stringify(tableName)} must be an identifier or schema.identifier ([A-Za-z_][A-Za-z0-9_]*)`,
    );
  }
  const sweepIntervalMs = options.sweepIntervalMs ?? POSTGRES_STORE_DEFAULTS.sweepIntervalMs;
  if (!(sweepIntervalMs > 0) || !Number.isFinite(sweepIntervalMs)) {
    throw new RangeError(`sweepIntervalMs ${sweepIntervalMs} must be a finite number > 0`);
  }
  const clock = options.clock ?? systemClock;
  const table = tableName
    .split(".")
    .map((p) => `"${p}"`)
    .join(".");
  const indexName = `"${tableName.split(".").at(-1)}_expires_at"`;

  const owned = options.pool === undefined;
  let pool: PostgresPool | undefined = options.pool;
  const poolPromise: Promise<PostgresPool> =
    pool !== undefined
      ? Promise.resolve(pool)
      : openPool(options.connectionString as string).then((p) => {
          pool = p;
          return p;
        });
  // Keep an unawaited failure to load pg from surfacing as unhandled: every
  // operation awaits poolPromise and reports it.
  poolPromise.catch(() => {});

  let ready: Promise<void> | undefined;
  const ensureTable = (p: PostgresPool): Promise<void> => {
    ready ??= (async () => {
      for (const ddl of [
        `CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, fingerprint text NOT NULL, outcome text NOT NULL, expires_at timestamptz NOT NULL)`,
        `CREATE INDEX IF NOT EXISTS ${indexName} ON ${table} (expires_at)`,
      ]) {
        try {
          await p.query(ddl);
        } catch (e) {
          // Two processes creating it at once: the loser hits a unique
          // violation in the catalog; the table is there all the same.
          if (!["23505", "42P07"].includes(sqlState(e) ?? "")) throw e;
        }
      }
    })().catch((e) => {
      ready = undefined;
      throw e;
    });
    return ready;
  };

  const open = new Map<string, OpenClaim>();
  let lastSweep = clock.now();

  const run = async <T>(op: string, fn: (p: PostgresPool) => Promise<T>): Promise<T> => {
    try {
      const p = await poolPromise;
      await ensureTable(p);
      return await fn(p);
    } catch (e) {
      if (e instanceof IdempotencyStoreError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new IdempotencyStoreError(`postgres ${op} failed: ${why}`, { cause: e });
    }
  };

  const readCompleted = async (
    q: PostgresPool | PostgresPoolClient,
    recordKey: string,
  ): Promise<StoredState | undefined> => {
    const r = await q.query<{ fingerprint: string; outcome: string }>(
      `SELECT fingerprint, outcome FROM ${table} WHERE key = $1 AND expires_at > now()`,
      [recordKey],
    );
    const row = r.rows[0];
    if (row === undefined) return undefined;
    try {
      return {
        state: "completed",
        record: { fingerprint: row.fingerprint, outcome: decodeOutcome(row.outcome) },
      };
    } catch (e) {
      if (e instanceof OutcomeDecodeError) {
        throw new IdempotencyStoreError(`postgres record is corrupt: ${e.message}`, { cause: e });
      }
      throw e;
    }
  };

  const lockKeys = (recordKey: string): [number, number] => {
    const h = createHash("sha256").update(`${tableName}\n${recordKey}`).digest();
    return [h.readUInt32BE(0) & 0x7fffffff, h.readUInt32BE(4) & 0x7fffffff];
  };

  // finishClient returns a claim's connection to the pool, or destroys it
  // when its state is unknown (a dead or aborted session must not be reused).
  const finishClient = (c: OpenClaim, destroy: boolean) => {
    handedOut.delete(c.client);
    c.client.removeListener("error", onClientError);
    c.client.release(destroy || c.broken ? true : undefined);
  };

  const maybeSweep = (p: PostgresPool) => {
    if (clock.now() - lastSweep < sweepIntervalMs) return;
    lastSweep = clock.now();
    sweepWith(p, 1_000).catch(() => {
      // Best effort: the next interval tries again.
    });
  };
  const sweepWith = async (p: PostgresPool, limit: number): Promise<number> => {
    const r = await p.query(
      `DELETE FROM ${table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM ${table} WHERE expires_at <= now() LIMIT $1))`,
      [limit],
    );
    return r.rowCount ?? 0;
  };

  const store: PostgresIdempotencyStore = {
    transactional: true,
    get pool(): PostgresPool {
      if (pool === undefined) throw new IdempotencyStoreError("postgres pool is not open yet");
      return pool;
    },
    table,
    claim(recordKey, fingerprint, leaseMs) {
      return run("claim", async (p): Promise<ClaimResult> => {
        maybeSweep(p);
        // Replays, the common duplicate, need no transaction.
        const done = await readCompleted(p, recordKey);
        if (done !== undefined) return done;
        const client = await p.connect();
        const c: OpenClaim = { recordKey, client, broken: false };
        client.on("error", onClientError);
        let keep = false;
        try {
          const timeout = Math.max(1, Math.min(Math.ceil(leaseMs), 2_147_483_647));
          await client.query(`BEGIN; SET LOCAL idle_in_transaction_session_timeout = ${timeout}`);
          const [k1, k2] = lockKeys(recordKey);
          const lock = await client.query<{ ok: boolean }>(
            "SELECT pg_try_advisory_xact_lock($1, $2) AS ok",
            [k1, k2],
          );
          // Read after the lock: its snapshot sees an owner's commit that released it.
          const found = await readCompleted(client, recordKey);
          if (found !== undefined || lock.rows[0]?.ok !== true) {
            await client.query("ROLLBACK");
            return (
              found ?? { state: "in-progress", fingerprint: undefined, leaseRemainingMs: leaseMs }
            );
          }
          await client.query(`SAVEPOINT ${SAVEPOINT}`);
          const token = newClaimToken(fingerprint);
          open.set(token, c);
          handedOut.add(client);
          keep = true;
          return { state: "claimed", token, transaction: client };
        } catch (e) {
          c.broken = true;
          throw e;
        } finally {
          if (!keep) finishClient(c, false);
        }
      });
    },
    complete(recordKey, token, outcome, ttlMs) {
      return run("complete", async () => {
        const c = open.get(token);
        const fp = tokenFingerprint(token);
        if (c === undefined || c.recordKey !== recordKey || fp === undefined) return false;
        open.delete(token);
        // ended: the transaction is over (committed or rolled back) on a live
        // session, so its advisory lock is gone now and the session is reusable.
        let ended = false;
        try {
          if (outcome.kind === "error") await c.client.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
          await c.client.query(
            `INSERT INTO ${table} (key, fingerprint, outcome, expires_at)
             VALUES ($1, $2, $3, now() + $4 * interval '1 millisecond')
             ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
               outcome = excluded.outcome, expires_at = excluded.expires_at`,
            [recordKey, fp, encodeOutcome(outcome), Math.max(1, Math.ceil(ttlMs))],
          );
          const r = await c.client.query("COMMIT");
          ended = true;
          // COMMIT of an aborted transaction answers ROLLBACK.
          return r.command === "COMMIT";
        } catch (e) {
          const lost = isLostClaim(e, c);
          // A SQL error on a live session (the handler left the transaction
          // aborted): roll back here, so the claim's lock is released when
          // this resolves rather than when the server notices a destroyed
          // socket, and a waiting duplicate can take the key at once.
          if (!c.broken && sqlState(e) !== undefined) {
            ended = await c.client.query("ROLLBACK").then(
              () => true,
              () => false,
            );
          }
          if (!ended) c.broken = true;
          if (lost) return false;
          throw e;
        } finally {
          finishClient(c, !ended);
        }
      });
    },
    release(recordKey, token) {
      return run("release", async () => {
        const c = open.get(token);
        if (c === undefined || c.recordKey !== recordKey) return false;
        open.delete(token);
        try {
          await c.client.query("ROLLBACK");
          return true;
        } catch {
          // The session is gone and its transaction with it.
          c.broken = true;
          return false;
        } finally {
          finishClient(c, false);
        }
      });
    },
    get(recordKey) {
      return run("get", async (p) => {
        const done = await readCompleted(p, recordKey);
        if (done !== undefined) return done;
        const [k1, k2] = lockKeys(recordKey);
        const r = await p.query(
          `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND classid = $1::int8::oid AND objid = $2::int8::oid AND objsubid = 2`,
          [k1, k2],
        );
        // The lease's end is the owner backend's business: unknown here.
        return (r.rowCount ?? 0) > 0
          ? { state: "in-progress", fingerprint: undefined, leaseRemainingMs: 0 }
          : undefined;
      });
    },
    sweep(limit = 1_000) {
      return run("sweep", (p) => sweepWith(p, limit));
    },
    async close() {
      for (const [token, c] of open) {
        open.delete(token);
        await c.client.query("ROLLBACK").catch(() => {
          c.broken = true;
        });
        finishClient(c, false);
      }
      if (owned) {
        const p = await poolPromise.catch(() => undefined);
        await p?.end();
      }
    },
  };
  return store;

  function onClientError(this: PostgresPoolClient): void {
    // The connection died (lease timeout, server restart) while claimed: the
    // next query on it fails and tells the owner; without a listener the
    // 'error' event would crash the process.
    for (const c of open.values()) if (c.client === this) c.broken = true;
  }
}

async function openPool(connectionString: string): Promise<PostgresPool> {
  let pg: {
    Pool: new (config: {
      connectionString: string;
      max: number;
      connectionTimeoutMillis: number;
    }) => PostgresPool;
  };
  try {
    const mod = (await import("pg")) as unknown as { default?: typeof pg } & typeof pg;
    pg = mod.default ?? mod;
  } catch (e) {
    throw new IdempotencyStoreError(
      "the Postgres idempotency store needs the optional peer dependency pg (>= 8): run `npm install pg`",
      { cause: e },
    );
  }
  const p = new pg.Pool({ connectionString, max: 20, connectionTimeoutMillis: 5_000 });
  // Idle clients that die (server restart) emit 'error' on the pool.
  p.on("error", () => {});
  return p;
}

function sqlState(e: unknown): string | undefined {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined;
  return typeof code === "string" ? code : undefined;
}

function isLostClaim(e: unknown, c: OpenClaim): boolean {
  const code = sqlState(e);
  if (code !== undefined && LOST_CLAIM_CODES.has(code)) return true;
  // A connection that died under us: the server rolled the transaction back
  // (or, for an interrupted COMMIT, the retry's claim finds out).
  return c.broken || (e instanceof Error && /Connection terminated/i.test(e.message));
}
