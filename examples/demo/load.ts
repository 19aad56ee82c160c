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

  // call makes one call and records it; false if it failed.
  const call = async (method: string, fn: (o: CallOpts) => Promise<unknown>): Promise<boolean> => {
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
      return true;
    } catch (e) {
      stats.callDone(method, performance.now() - started, ConnectError.from(e).code, undefined);
      return false;
    } finally {
      stats.inFlight--;
    }
  };

  const worker = async () => {
    while (!signal.aborted) {
      const i = n++;
      const id = recent[Math.floor(Math.random() * recent.length)];
      let ok: boolean;
      if (id === undefined || Math.random() < createShare) {
        ok = await call("CreateOrder", async (o) => {
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
        ok = await call("GetOrder", (o) => client.getOrder({ id }, o));
      }
      // A call that fails without I/O (an open breaker) settles in a
      // microtask: without a turn of the event loop here, workers would spin
      // and starve every timer and socket, the end of the load included.
      await new Promise<void>((resolve) => (ok ? setImmediate(resolve) : setTimeout(resolve, 20)));
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
