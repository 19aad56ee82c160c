import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Redis } from "ioredis";
import type { RedisClientLike, RedisConnectionOptions } from "../redis-client.js";
import { openRedisConnection } from "../redis-connection.js";
import { newClaimToken, tokenFingerprint } from "./claim-token.js";
import { decodeOutcome, encodeOutcome, OutcomeDecodeError } from "./outcome.js";
import {
  type ClaimResult,
  type IdempotencyStore,
  IdempotencyStoreError,
  type StoredState,
} from "./store.js";

/**
 * RedisIdempotencyStoreOptions configures createRedisIdempotencyStore. Give
 * either `redis` (a connection you own and close) or `connection` (the store
 * opens and owns one; `close()` closes it).
 */
export interface RedisIdempotencyStoreOptions<C extends RedisClientLike = RedisClientLike> {
  /** redis is an ioredis client to use as is; see REDIS_STORE_CONNECTION_DEFAULTS for advice. */
  readonly redis?: C;
  /** connection opens an ioredis client from a `redis://` URL or ioredis options. */
  readonly connection?: string | RedisConnectionOptions;
  /** keyPrefix starts every key the store writes; default `connect-mesh:idempotency:`. */
  readonly keyPrefix?: string;
}

/**
 * REDIS_STORE_CONNECTION_DEFAULTS are applied to connections the store opens
 * (your own options win). They make a lost Redis fail calls within about a
 * reconnect interval instead of queueing them: the interceptor fails closed,
 * so a store that hangs would hang every keyed call.
 * - `maxRetriesPerRequest: 0`: a queued command fails on the first failed
 *   reconnect (measured ~10-200 ms against a closed port) rather than after 20;
 * - `commandTimeout: 1_000`: the backstop for a Redis that accepts but stalls;
 * - `connectTimeout: 1_000`;
 * the offline queue stays on, so commands sent while the first connection is
 * being made wait for it instead of failing.
 */
export const REDIS_STORE_CONNECTION_DEFAULTS: Readonly<{
  maxRetriesPerRequest: number;
  commandTimeout: number;
  connectTimeout: number;
}> = Object.freeze({
  maxRetriesPerRequest: 0,
  commandTimeout: 1_000,
  connectTimeout: 1_000,
});

/**
 * RedisIdempotencyStore is an IdempotencyStore in Redis, shared by any number
 * of replicas. `C` is the type of the `redis` you gave; a connection the
 * store opened is an ioredis `Redis` typed RedisClientLike (cast it to call
 * other commands).
 */
export interface RedisIdempotencyStore<C extends RedisClientLike = RedisClientLike>
  extends IdempotencyStore {
  /** redis is the client in use. */
  readonly redis: C;
  /** keyFor returns the Redis key of a record key (for tests and operations). */
  keyFor(recordKey: string): string;
  /** close quits the connection if the store opened it; a given `redis` is left open. */
  close(): Promise<void>;
}

// Values: "p\n<token>" while in progress, "c\n<fingerprint>\n<outcome JSON>"
// once completed. Tokens hold the fingerprint (claim-token.ts). The scripts
// make every step one atomic round trip.

// KEYS[1] record; ARGV[1] in-progress value, ARGV[2] lease ms.
// -> {1} claimed, or {0, value, pttl}.
const CLAIM = `
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return {1} end
return {0, redis.call("GET", KEYS[1]), redis.call("PTTL", KEYS[1])}
`;

// KEYS[1] record; ARGV[1] owner's in-progress value, ARGV[2] completed value,
// ARGV[3] ttl ms. Completes when the owner still holds the key or it is absent.
const COMPLETE = `
local v = redis.call("GET", KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1
`;

// KEYS[1] record; ARGV[1] owner's in-progress value.
const RELEASE = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0
`;

// KEYS[1] record; ARGV[1] owner's in-progress value, ARGV[2] lease ms.
// Compare-and-pexpire: only the owner extends its own live claim.
const RENEW = `
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0
`;

// KEYS[1] record -> {value or false, pttl}.
const GET = `return {redis.call("GET", KEYS[1]), redis.call("PTTL", KEYS[1])}`;

interface Scripted {
  meshIdempotencyClaim(key: string, value: string, leaseMs: number): Promise<unknown>;
  meshIdempotencyComplete(
    key: string,
    owner: string,
    value: string,
    ttlMs: number,
  ): Promise<unknown>;
  meshIdempotencyRelease(key: string, owner: string): Promise<unknown>;
  meshIdempotencyRenew(key: string, owner: string, leaseMs: number): Promise<unknown>;
  meshIdempotencyGet(key: string): Promise<unknown>;
}

/**
 * createRedisIdempotencyStore keeps records in Redis so that all replicas of a
 * service see one another's claims and outcomes. Claims are atomic (`SET NX
 * PX` inside a script); completion, release and lease renewal (compare and
 * PEXPIRE) check the owner token inside a Lua script, so a call whose lease ran out and was taken over cannot
 * overwrite or delete the new owner's record. Keys are the prefix and the
 * SHA-256 of the record key (principals and keys can be long or binary-ish).
 * Works with Redis >= 2.6.12 and Valkey; not with Redis Cluster multi-key
 * features (none are used: every script touches one key).
 */
export function createRedisIdempotencyStore<C extends RedisClientLike = RedisClientLike>(
  options: RedisIdempotencyStoreOptions<C>,
): RedisIdempotencyStore<C> {
  if ((options.redis === undefined) === (options.connection === undefined)) {
    throw new TypeError("createRedisIdempotencyStore: give exactly one of redis and connection");
  }
  const keyPrefix = options.keyPrefix ?? "connect-mesh:idempotency:";
  if (typeof keyPrefix !== "string") {
    throw new TypeError(`keyPrefix ${String(keyPrefix)} must be a string`);
  }
  // Only a connection the store opened is closed by it: that one is ioredis.
  const opened =
    options.redis === undefined
      ? openRedisConnection(
          options.connection as string | RedisConnectionOptions,
          REDIS_STORE_CONNECTION_DEFAULTS,
        )
      : undefined;
  const redis: RedisClientLike = options.redis ?? (opened as Redis);
  redis.defineCommand("meshIdempotencyClaim", { numberOfKeys: 1, lua: CLAIM });
  redis.defineCommand("meshIdempotencyComplete", { numberOfKeys: 1, lua: COMPLETE });
  redis.defineCommand("meshIdempotencyRelease", { numberOfKeys: 1, lua: RELEASE });
  redis.defineCommand("meshIdempotencyRenew", { numberOfKeys: 1, lua: RENEW });
  redis.defineCommand("meshIdempotencyGet", { numberOfKeys: 1, lua: GET });
  const scripted = redis as unknown as Scripted;

  const keyFor = (recordKey: string) =>
    keyPrefix + createHash("sha256").update(recordKey).digest("base64url");

  const run = async <T>(op: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof IdempotencyStoreError) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw new IdempotencyStoreError(`redis ${op} failed: ${why}`, { cause: e });
    }
  };

  return {
    // Without `redis`, C is not inferred and stays RedisClientLike.
    redis: redis as C,
    keyFor,
    claim(recordKey, fingerprint, leaseMs) {
      return run("claim", async () => {
        const token = newClaimToken(fingerprint);
        const reply = await scripted.meshIdempotencyClaim(
          keyFor(recordKey),
          `p\n${token}`,
          Math.max(1, Math.ceil(leaseMs)),
        );
        if (!Array.isArray(reply)) throw new IdempotencyStoreError("redis claim: bad reply");
        if (reply[0] === 1) return { state: "claimed", token } satisfies ClaimResult;
        const state = parseValue(reply[1], reply[2]);
        // The key expired between SET and GET inside one script cannot happen;
        // an absent value here means a foreign write: report it.
        if (state === undefined) throw new IdempotencyStoreError("redis claim: record vanished");
        return state;
      });
    },
    complete(recordKey, token, outcome, ttlMs) {
      return run("complete", async () => {
        const fingerprint = tokenFingerprint(token);
        if (fingerprint === undefined) return false;
        const reply = await scripted.meshIdempotencyComplete(
          keyFor(recordKey),
          `p\n${token}`,
          `c\n${fingerprint}\n${encodeOutcome(outcome)}`,
          Math.max(1, Math.ceil(ttlMs)),
        );
        return reply === 1;
      });
    },
    release(recordKey, token) {
      return run("release", async () => {
        const reply = await scripted.meshIdempotencyRelease(keyFor(recordKey), `p\n${token}`);
        return reply === 1;
      });
    },
    renew(recordKey, token, leaseMs) {
      return run("renew", async () => {
        const reply = await scripted.meshIdempotencyRenew(
          keyFor(recordKey),
          `p\n${token}`,
          Math.max(1, Math.ceil(leaseMs)),
        );
        return reply === 1;
      });
    },
    get(recordKey) {
      return run("get", async () => {
        const reply = await scripted.meshIdempotencyGet(keyFor(recordKey));
        if (!Array.isArray(reply)) throw new IdempotencyStoreError("redis get: bad reply");
        return parseValue(reply[0], reply[1]);
      });
    },
    async close() {
      if (opened === undefined || opened.status === "end") return;
      if (opened.status !== "ready") {
        // Not connected: stop reconnecting (ioredis emits no "end" then).
        opened.disconnect();
        return;
      }
      const ended = once(opened, "end");
      await opened.quit().catch(() => opened.disconnect());
      await ended;
    },
  };
}

function parseValue(value: unknown, pttl: unknown): StoredState | undefined {
  if (value === null || value === undefined || value === false) return undefined;
  if (typeof value !== "string") throw new IdempotencyStoreError("redis record is not a string");
  if (value.startsWith("p\n")) {
    const fingerprint = tokenFingerprint(value.slice(2));
    if (fingerprint === undefined) throw new IdempotencyStoreError("redis record has a bad token");
    return {
      state: "in-progress",
      fingerprint,
      leaseRemainingMs: typeof pttl === "number" && pttl > 0 ? pttl : 0,
    };
  }
  if (value.startsWith("c\n")) {
    const nl = value.indexOf("\n", 2);
    if (nl < 0) throw new IdempotencyStoreError("redis record is truncated");
    try {
      return {
        state: "completed",
        record: { fingerprint: value.slice(2, nl), outcome: decodeOutcome(value.slice(nl + 1)) },
      };
    } catch (e) {
      if (e instanceof OutcomeDecodeError) {
        throw new IdempotencyStoreError(`redis record is corrupt: ${e.message}`, { cause: e });
      }
      throw e;
    }
  }
  throw new IdempotencyStoreError("redis record has an unknown format");
}
