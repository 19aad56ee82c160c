import type { Redis, RedisOptions } from "ioredis";
import { lazyModule } from "./lazy-module.js";
import type { RedisConnectionOptions } from "./redis-client.js";

const loadIoredis = lazyModule<typeof import("ioredis")>("ioredis");

/**
 * openRedisConnection opens the ioredis connection a Redis store owns, from a
 * `redis://` URL or options laid over the store's `defaults`. Connection
 * errors surface as failed commands; the empty listener keeps ioredis from
 * reporting every failed reconnect as an unhandled 'error' event.
 * @internal kept out of the published types, which name no ioredis type.
 */
export function openRedisConnection(
  connection: string | RedisConnectionOptions,
  defaults: Readonly<RedisOptions>,
): Redis {
  const { Redis } = loadIoredis();
  const redis =
    typeof connection === "string"
      ? new Redis(connection, { ...defaults })
      : new Redis({ ...defaults, ...connection });
  redis.on("error", () => {});
  return redis;
}
