import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type Order,
  OrderSchema,
  OrderService,
  OrderStatus,
} from "../gen/example/orders/v1/orders_pb.js";

/**
 * OrderRepository keeps orders. The default is a Map in this process; the
 * multi-process demo passes one shared by its replicas (examples/demo/), as a
 * real service would use a database.
 */
export interface OrderRepository {
  get(id: string): Order | undefined;
  set(id: string, order: Order): void;
}

/** OrderServiceOptions configures createOrderService. */
export interface OrderServiceOptions {
  /** orders keeps the orders; default a Map in this process. */
  readonly orders?: OrderRepository;
}

/**
 * createOrderService is the example OrderService: orders live in memory (or
 * in `options.orders`), and every answer names the replica that served it.
 * WatchOrders streams the changes of one customer's orders until the call
 * ends (changes made by this replica).
 */
export function createOrderService(
  servedBy: string,
  options: OrderServiceOptions = {},
): ServiceImpl<typeof OrderService> {
  const orders: OrderRepository = options.orders ?? new Map<string, Order>();
  const watchers = new Set<(o: Order) => void>();
  const publish = (o: Order) => {
    for (const w of watchers) w(o);
  };
  return {
    createOrder(req) {
      if (req.customerId === "") {
        throw new ConnectError("customer_id is required", Code.InvalidArgument);
      }
      if (req.items.length === 0) {
        throw new ConnectError("an order needs at least one item", Code.InvalidArgument);
      }
      const order = create(OrderSchema, {
        id: randomUUID(),
        customerId: req.customerId,
        items: req.items,
        totalCents: req.items.reduce((sum, i) => sum + i.unitPriceCents * BigInt(i.quantity), 0n),
        status: OrderStatus.CREATED,
        servedBy,
      });
      orders.set(order.id, order);
      publish(order);
      return { order };
    },
    getOrder(req) {
      const order = orders.get(req.id);
      if (order === undefined) {
        throw new ConnectError(`order ${JSON.stringify(req.id)} not found`, Code.NotFound);
      }
      return { order: { ...order, servedBy } };
    },
    cancelOrder(req) {
      const order = orders.get(req.id);
      if (order === undefined) {
        throw new ConnectError(`order ${JSON.stringify(req.id)} not found`, Code.NotFound);
      }
      order.status = OrderStatus.CANCELLED;
      orders.set(order.id, order);
      publish(order);
      return { order: { ...order, servedBy } };
    },
    async *watchOrders(req, ctx) {
      const queue: Order[] = [];
      let wake: (() => void) | undefined;
      const watcher = (o: Order) => {
        if (o.customerId === req.customerId) {
          queue.push(o);
          wake?.();
        }
      };
      watchers.add(watcher);
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        while (!ctx.signal.aborted) {
          const next = queue.shift();
          if (next !== undefined) {
            yield { order: { ...next, servedBy } };
            continue;
          }
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      } finally {
        watchers.delete(watcher);
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  };
}

export { OrderService };
