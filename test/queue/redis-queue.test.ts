import { afterAll, describe } from "vitest";
import { createRedisQueue } from "../../src/queue/redis-queue.js";
import { createTestRedis, REDIS_HOST, REDIS_PORT, requireRedis } from "../support/redis.js";
import { queueContract } from "./queue-contract.js";

const hasRedis = await requireRedis();

describe.skipIf(!hasRedis)("queue on Redis (BullMQ)", () => {
  // Every queue of this file lives under one random prefix, deleted afterwards.
  const t = createTestRedis();
  afterAll(() => t.close());
  let n = 0;
  queueContract("redis", () =>
    createRedisQueue({
      name: `orders-${n++}`,
      prefix: t.keyPrefix.slice(0, -1),
      connection: { host: REDIS_HOST, port: REDIS_PORT },
    }),
  );
});
