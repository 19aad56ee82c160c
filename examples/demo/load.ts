import { type Client, ConnectError, createContextValues } from "@connectrpc/connect";
import { meshCallKey } from "../../src/index.js";
import type { OrderService } from "../order-service.js";
import type { RunStats } from "./run-stats.js";

/** LoadOptions configures runLoad. */
export interface LoadOptions {
  readonly client: Client<typeof OrderService>;
  readonly stats: RunStats;
  /** concurrency is the number of calls kept in flight. */
  readonly concurrency: number;
  /** signal ends the load: no new calls start once it aborts. */
  readonly signal: AbortSignal;
  /** timeoutMs is each call's deadline. */
  readonly timeoutMs: number;
  /** createShare is the share of calls that are CreateOrder (the rest GetOrder). */
  readonly createShare?: number;
}

/**
 * runLoad keeps `concurrency` calls in flight until `signal` aborts, then
 * waits for the calls in flight: CreateOrder (a new order; the transport
 * gives it an idempotency key, which makes it safe to retry) and GetOrder of
 * a recently created order (NO_SIDE_EFFECTS, retried and hedged freely).
 */
export async function runLoad(options: LoadOptions): Promise<void> {
  const { client, stats, signal, timeoutMs } = options;
  const createShare = options.createShare ?? 0.6;
  const recent: string[] = [];
  let n = 0;

  const call = async (method: string, fn: (o: CallOpts) => Promise<unknown>) => {
    const contextValues = createContextValues();
    let replayed = false;
    const started = performance.now();
    stats.inFlight++;
    try {
      await fn({
        timeoutMs,
        contextValues,
        onHeader: (h: Headers) => {
          replayed = h.get("idempotency-replayed") === "true";
        },
      });
      if (replayed) stats.replays++;
      stats.callDone(method, performance.now() - started, undefined, endpointOf(contextValues));
    } catch (e) {
      stats.callDone(method, performance.now() - started, ConnectError.from(e).code, undefined);
    } finally {
      stats.inFlight--;
    }
  };

  const worker = async () => {
    while (!signal.aborted) {
      const i = n++;
      const id = recent[Math.floor(Math.random() * recent.length)];
      if (id === undefined || Math.random() < createShare) {
        await call("CreateOrder", async (o) => {
          const { order } = await client.createOrder(
            {
              customerId: `c-${i % 100}`,
              items: [{ sku: `sku-${i % 17}`, quantity: 1 + (i % 3), unitPriceCents: 250n }],
            },
            o,
          );
          if (order !== undefined) {
            recent.push(order.id);
            if (recent.length > 1_000) recent.splice(0, recent.length - 1_000);
          }
        });
      } else {
        await call("GetOrder", (o) => client.getOrder({ id }, o));
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
}

interface CallOpts {
  timeoutMs: number;
  contextValues: ReturnType<typeof createContextValues>;
  onHeader: (h: Headers) => void;
}

function endpointOf(values: ReturnType<typeof createContextValues>): string | undefined {
  return values.get(meshCallKey)?.endpoint;
}
