/**
 * RedisClientLike is the part of a Redis client the Redis stores call: an
 * ioredis `Redis` (any 6.x) fits. The stores are typed structurally, so
 * connect-mesh's published types name no `ioredis` or `bullmq` type and a
 * program compiled with `skipLibCheck: false` type-checks whichever ioredis
 * it resolves (6.1's declarations import the untyped `redis-errors`).
 */
export interface RedisClientLike {
  /** status is the connection state (`ready`, `reconnecting`, `end`, ...). */
  readonly status: string;
  /**
   * defineCommand adds a method named `name` that runs the Lua script with
   * EVALSHA (falling back to EVAL), as ioredis does.
   */
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
}

/**
 * RedisConnectionOptions are the options of a connection a store or queue
 * opens itself: the common ones are named here, any other ioredis option
 * (`tls`, `connectTimeout`, `retryStrategy`, ...) passes through as is, so
 * ioredis `RedisOptions` fit. `tls` is left to ioredis: its type differs
 * between 6.0 (`tls.ConnectionOptions`) and 6.1 (also a Redis Cloud profile
 * name).
 */
export interface RedisConnectionOptions {
  /** host of the Redis server; default 127.0.0.1. */
  readonly host?: string;
  /** port of the Redis server; default 6379. */
  readonly port?: number;
  /** username for ACL authentication (Redis >= 6). */
  readonly username?: string;
  /** password for AUTH. */
  readonly password?: string;
  /** db is the database index to SELECT; default 0. */
  readonly db?: number;
  // biome-ignore lint/suspicious/noExplicitAny: as in ioredis and BullMQ options; `unknown` would reject ioredis's RedisOptions (an interface has no implicit index signature).
  readonly [option: string]: any;
}
