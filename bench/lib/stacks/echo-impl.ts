import type { Client, ServiceImpl } from "@connectrpc/connect";
import {
  type EchoBidiRequest,
  EchoNoSideEffectsService,
  EchoService,
} from "../../../gen/test/v1/echo_pb.js";
import type { StackOptions } from "../protocol.js";
import {
  type BidiHandle,
  type EchoClientHandle,
  type EchoMethod,
  numberOption,
  sleep,
} from "./types.js";

type EchoImpl = Pick<ServiceImpl<typeof EchoService>, "echo" | "echoServerStream" | "echoBidi">;

/**
 * createBenchEchoImpl is the minimal Connect EchoService used by the Connect
 * and mesh servers: Echo returns the payload (after `delayMs` if set),
 * EchoServerStream sends `repeat` copies as fast as the client takes them,
 * EchoBidi answers each message at once; EchoClientStream is unimplemented.
 */
export function createBenchEchoImpl(options: StackOptions): EchoImpl {
  const delayMs = numberOption(options, "delayMs", 0);
  const streams: Omit<EchoImpl, "echo"> = {
    async *echoServerStream(req) {
      for (let index = 0; index < req.repeat; index++) {
        yield { payload: req.payload, index };
      }
    },
    async *echoBidi(reqs: AsyncIterable<EchoBidiRequest>) {
      let index = 0;
      for await (const r of reqs) {
        yield { payload: r.payload, index: index++ };
      }
    },
  };
  if (delayMs > 0) {
    return {
      async echo(req) {
        await sleep(delayMs);
        return { payload: req.payload };
      },
      ...streams,
    };
  }
  return {
    echo(req) {
      return { payload: req.payload };
    },
    ...streams,
  };
}

/** benchNoSideEffectsImpl is the NO_SIDE_EFFECTS echo the Connect and mesh servers also serve. */
export const benchNoSideEffectsImpl: ServiceImpl<typeof EchoNoSideEffectsService> = {
  echoNoSideEffects(req) {
    return { payload: req.payload };
  },
};

/**
 * createConnectEchoClient wraps Connect clients of both echo services (stock
 * or mesh transport underneath) as an EchoClientHandle.
 */
export function createConnectEchoClient(
  echo: Client<typeof EchoService>,
  noSideEffects: Client<typeof EchoNoSideEffectsService>,
  method: EchoMethod,
  close: () => Promise<void>,
): EchoClientHandle {
  return {
    echo:
      method === "echo"
        ? async (payload) => (await echo.echo({ payload })).payload
        : async (payload) => (await noSideEffects.echoNoSideEffects({ payload })).payload,
    async serverStream(payload, count, onMessage) {
      // Breaking out of the loop cancels the call.
      for await (const m of echo.echoServerStream({ payload, repeat: count })) {
        if (!onMessage(m.payload)) {
          break;
        }
      }
    },
    openBidi(): BidiHandle {
      const requests = createPushQueue<{ payload: Uint8Array }>();
      const responses = echo.echoBidi(requests)[Symbol.asyncIterator]();
      return {
        async roundTrip(payload) {
          requests.push({ payload });
          const r = await responses.next();
          if (r.done === true) {
            throw new Error("bidi stream ended before answering");
          }
          return r.value.payload;
        },
        async close() {
          requests.end();
          // Drain to the server's end of stream, so the call finishes cleanly.
          for (;;) {
            const r = await responses.next();
            if (r.done === true) {
              return;
            }
          }
        },
      };
    },
    close,
  };
}

/** PushQueue is an async iterable fed by push(); one consumer. */
interface PushQueue<T> extends AsyncIterable<T> {
  push(value: T): void;
  end(): void;
}

function createPushQueue<T>(): PushQueue<T> {
  const items: T[] = [];
  let ended = false;
  let waiter: (() => void) | undefined;
  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  // An async generator, so Connect can call return() and throw() on it.
  async function* iterate(): AsyncGenerator<T> {
    for (;;) {
      while (items.length > 0) {
        yield items.shift() as T;
      }
      if (ended) {
        return;
      }
      await new Promise<void>((resolve) => {
        waiter = resolve;
      });
    }
  }
  return {
    push(value) {
      items.push(value);
      wake();
    },
    end() {
      ended = true;
      wake();
    },
    [Symbol.asyncIterator]: iterate,
  };
}

export { EchoNoSideEffectsService, EchoService };
