// Redis helpers of the paired suites: is Redis there (skip or, with
// MESH_REQUIRE_SERVICES=1, fail without it), the Redis server's own CPU
// (INFO cpu), and deleting a run's keys afterwards.

import { connect } from "node:net";
import { Redis } from "ioredis";

export const REDIS_HOST = process.env.MESH_REDIS_HOST ?? "127.0.0.1";
export const REDIS_PORT = Number(process.env.MESH_REDIS_PORT ?? 6379);
export const REQUIRE_SERVICES_ENV = "MESH_REQUIRE_SERVICES";

/** redisReachable answers true, or why Redis cannot be used. */
export async function redisReachable(timeoutMs = 1_000): Promise<true | string> {
  const tcp = await new Promise<true | string>((resolve) => {
    const socket = connect({ host: REDIS_HOST, port: REDIS_PORT });
    const done = (v: true | string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done("no answer"), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", (e) => done(e.message));
  });
  if (tcp !== true) {
    return `redis at ${REDIS_HOST}:${REDIS_PORT} is not reachable (${tcp})`;
  }
  const redis = openAdmin();
  try {
    const pong = await redis.ping();
    return pong === "PONG" ? true : `redis at ${REDIS_HOST}:${REDIS_PORT} answered ${pong}`;
  } catch (err) {
    return `redis at ${REDIS_HOST}:${REDIS_PORT}: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    redis.disconnect();
  }
}

/** openAdmin opens a connection for measurements and clean-up. */
export function openAdmin(): Redis {
  return new Redis({
    host: REDIS_HOST,
    port: REDIS_PORT,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    commandTimeout: 5_000,
    lazyConnect: false,
  });
}

/** redisCpuUs is the Redis server's CPU time so far (used_cpu_sys + used_cpu_user), in µs. */
export async function redisCpuUs(redis: Redis): Promise<number> {
  const info = await redis.info("cpu");
  let us = 0;
  let found = 0;
  for (const line of info.split("\n")) {
    const m = /^used_cpu_(sys|user):([\d.]+)/.exec(line.trim());
    if (m !== null) {
      us += Number(m[2]) * 1e6;
      found++;
    }
  }
  return found === 2 ? us : Number.NaN;
}

/** deleteKeys deletes every key starting with `prefix`; returns how many. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 2_000);
    cursor = next;
    if (keys.length > 0) {
      n += await redis.unlink(...keys);
    }
  } while (cursor !== "0");
  return n;
}
