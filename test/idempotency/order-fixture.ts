// Shared by the idempotency tests: the example OrderService wrapped to count
// how often CreateOrder's handler really runs, with knobs to slow it down or
// make it fail, and helpers to start mesh replicas around it.

import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { createOrderService, OrderService } from "../../examples/order-service.js";
import { IDEMPOTENCY_KEY_HEADER } from "../../src/idempotency/idempotency-key.js";
import {
  type BoundAddress,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshServerOptions,
  type MeshTransport,
  type MeshTransportOptions,
} from "../../src/index.js";

export { OrderService };

/** ORDER is a valid CreateOrder request. */
export const ORDER = {
  customerId: "c-1",
  items: [{ sku: "sku-1", quantity: 2, unitPriceCents: 250n }],
};

/** OrderStats is shared by CreateOrder handlers: execution count and knobs. */
export interface OrderStats {
  /** executions counts CreateOrder handler runs (of every replica sharing these stats). */
  executions: number;
  /** delayMs makes CreateOrder wait (honouring ctx.signal) before answering. */
  delayMs: number;
  /** failWith makes the next CreateOrder runs fail with these errors (one per run). */
  failWith: ConnectError[];
  /** keysSeen lists the idempotency-key headers CreateOrder saw, in order. */
  keysSeen: (string | null)[];
}

/** createOrderStats returns fresh stats. */
export function createOrderStats(): OrderStats {
  return { executions: 0, delayMs: 0, failWith: [], keysSeen: [] };
}

/**
 * countingOrderService wraps examples/order-service.ts so CreateOrder counts
 * its runs in `stats`. It also sets a response header `x-order-served-by` and
 * a trailer `x-order-trailer`, so tests can check that replays carry them.
 */
export function countingOrderService(
  servedBy: string,
  stats: OrderStats,
): ServiceImpl<typeof OrderService> {
  const base = createOrderService(servedBy);
  return {
    ...base,
    async createOrder(req, ctx) {
      stats.executions++;
      stats.keysSeen.push(ctx.requestHeader.get(IDEMPOTENCY_KEY_HEADER));
      if (stats.delayMs > 0) {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, stats.delayMs);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(t);
            reject(ConnectError.from(ctx.signal.reason, Code.Canceled));
          });
        });
      }
      const fail = stats.failWith.shift();
      if (fail !== undefined) throw fail;
      ctx.responseHeader.set("x-order-served-by", servedBy);
      ctx.responseTrailer.set("x-order-trailer", `t-${servedBy}`);
      return base.createOrder(req, ctx);
    },
  };
}

/** Replica is one running mesh server with OrderService. */
export interface Replica {
  readonly server: MeshServer;
  readonly bound: BoundAddress;
}

/**
 * startReplica serves `impl` on 127.0.0.1:0 with the mesh server's defaults
 * (idempotency on, memory store) unless `options` says otherwise: pass
 * `idempotency: { store, principal, ... }` to configure the built-in
 * interceptor, `idempotency: false` to turn it off.
 */
export async function startReplica(
  impl: ServiceImpl<typeof OrderService>,
  options: Omit<MeshServerOptions, "routes"> = {},
): Promise<Replica> {
  const server = createMeshServer({
    ...options,
    routes: (r) => r.service(OrderService, impl),
  });
  const bound = await server.listen();
  return { server, bound };
}

/**
 * ordersClient makes a Connect client for `target` over a mesh transport with
 * its defaults (idempotency keys "auto", retries, breakers) and a 5 s default
 * deadline, unless `options` says otherwise (`retry: false` for exact attempt
 * counts and raw error codes, `idempotencyKeys: false` when the test sets the
 * keys itself).
 */
export function ordersClient(
  target: string,
  options: Omit<MeshTransportOptions, "target"> = {},
): { client: ReturnType<typeof createClient<typeof OrderService>>; transport: MeshTransport } {
  const transport = createMeshTransport({ defaultTimeoutMs: 5_000, ...options, target });
  return { client: createClient(OrderService, transport), transport };
}

/** callOutcome runs a call and returns its response or its ConnectError, never throwing. */
export async function callOutcome<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: ConnectError }> {
  try {
    return { ok: true, value: await p };
  } catch (e) {
    return { ok: false, error: ConnectError.from(e) };
  }
}

/** keyed returns call options sending `key` as the idempotency-key header, recording headers seen. */
export function keyed(key: string) {
  const seen: { header?: Headers; trailer?: Headers } = {};
  return {
    seen,
    options: {
      headers: { [IDEMPOTENCY_KEY_HEADER]: key },
      onHeader: (h: Headers) => {
        seen.header = h;
      },
      onTrailer: (t: Headers) => {
        seen.trailer = t;
      },
    },
  };
}
