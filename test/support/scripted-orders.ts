import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { createMeshServer, type MeshServer, parseGrpcTimeout } from "../../src/index.js";

/** Arrival is what the scripted server saw of one attempt. */
export interface Arrival {
  readonly method: string;
  readonly at: number;
  readonly timeoutMs: number | undefined;
  readonly previousAttempts: string | null;
  readonly idempotencyKey: string | null;
}

/**
 * Step says how the scripted server answers the n-th arrival (1-based) of a
 * method: a result, an error, a delay first, trailers on the error.
 */
export type Step =
  | { readonly ok: true; readonly delayMs?: number }
  | {
      readonly code: Code;
      readonly delayMs?: number;
      readonly trailers?: Record<string, string>;
    };

/** Script maps the arrival count of a method to a step; default: OK. */
export type Script = (method: string, n: number) => Step;

/** startScriptedOrders serves OrderService answering by `script`, recording arrivals. */
export async function startScriptedOrders(
  name: string,
  script: Script,
): Promise<{ server: MeshServer; address: string; arrivals: Arrival[] }> {
  const arrivals: Arrival[] = [];
  const counts = new Map<string, number>();
  const run = async (method: string, ctx: HandlerContext): Promise<void> => {
    arrivals.push({
      method,
      at: performance.now(),
      timeoutMs: parseGrpcTimeout(ctx.requestHeader.get("grpc-timeout")),
      previousAttempts: ctx.requestHeader.get("grpc-previous-rpc-attempts"),
      idempotencyKey: ctx.requestHeader.get("idempotency-key"),
    });
    const n = (counts.get(method) ?? 0) + 1;
    counts.set(method, n);
    const step = script(method, n);
    if (step.delayMs !== undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, step.delayMs);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if ("code" in step) {
      throw new ConnectError(`scripted ${Code[step.code]} #${n}`, step.code, step.trailers);
    }
  };
  const order = (id: string) => ({ order: { id, servedBy: name } });
  const impl: ServiceImpl<typeof OrderService> = {
    async createOrder(req, ctx) {
      await run("CreateOrder", ctx);
      return order(`new-${req.customerId}`);
    },
    async getOrder(req, ctx) {
      await run("GetOrder", ctx);
      return order(req.id);
    },
    async cancelOrder(req, ctx) {
      await run("CancelOrder", ctx);
      return order(req.id);
    },
    async *watchOrders(req, ctx) {
      await run("WatchOrders", ctx);
      yield order(`${req.customerId}-1`);
      const n = counts.get("WatchOrders") ?? 0;
      const after = script("WatchOrders.after", n);
      if ("code" in after) {
        throw new ConnectError("scripted failure after the first message", after.code);
      }
      yield order(`${req.customerId}-2`);
    },
  };
  const server = createMeshServer({ routes: (r) => r.service(OrderService, impl) });
  const { address } = await server.listen();
  return { server, address, arrivals };
}

export { OrderService };
