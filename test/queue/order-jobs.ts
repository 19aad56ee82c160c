// Test support for the queue suites: a scripted OrderService whose CreateOrder
// has one countable effect per customer, and fails on request first.

import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { currentLogger } from "../../src/observability/current-call.js";
import { queuedJobKey } from "../../src/queue/queued-job-key.js";

export { OrderService };

/** OrderJobs is the handler's state: effects per customer and scripted failures. */
export interface OrderJobs {
  /** effects counts CreateOrder effects per customer id. */
  readonly effects: Map<string, number>;
  /** failures holds, per customer id, the codes the next attempts fail with (before any effect). */
  readonly failures: Map<string, Code[]>;
  /** rejected lists customer ids answered INVALID_ARGUMENT (until removed: "the fix"). */
  readonly rejected: Set<string>;
  /** attempts lists the queued attempt numbers seen per customer id. */
  readonly attempts: Map<string, number[]>;
  /** delayMs delays every handler (for close and in-flight tests). */
  delayMs: number;
  routes(router: ConnectRouter): void;
}

export function createOrderJobs(): OrderJobs {
  const jobs: OrderJobs = {
    effects: new Map(),
    failures: new Map(),
    rejected: new Set(),
    attempts: new Map(),
    delayMs: 0,
    routes(router) {
      router.service(OrderService, {
        async createOrder(req, ctx) {
          const id = req.customerId;
          const info = ctx.values.get(queuedJobKey);
          jobs.attempts.set(id, [...(jobs.attempts.get(id) ?? []), info?.attempt ?? 0]);
          currentLogger().info({ customer: id }, "creating order");
          if (jobs.delayMs > 0) await new Promise((r) => setTimeout(r, jobs.delayMs));
          const next = jobs.failures.get(id)?.shift();
          if (next !== undefined) throw new ConnectError(`scripted failure for ${id}`, next);
          if (jobs.rejected.has(id)) {
            throw new ConnectError(`customer ${id} is not allowed`, Code.InvalidArgument);
          }
          jobs.effects.set(id, (jobs.effects.get(id) ?? 0) + 1);
          return { order: { id: `o-${id}`, customerId: id } };
        },
        getOrder: (req) => ({ order: { id: req.id } }),
        cancelOrder: (req) => ({ order: { id: req.id } }),
        async *watchOrders() {},
      });
    },
  };
  return jobs;
}
