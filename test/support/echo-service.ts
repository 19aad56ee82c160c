import { type Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { EchoService } from "../../gen/test/v1/echo_pb.js";

/** sleep waits `ms`, rejecting early with the signal's reason when given one that aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * createEchoImpl is the test EchoService: it echoes payloads, reports the
 * deadline it saw, and fails or stalls on request.
 */
export function createEchoImpl(servedBy = "echo"): ServiceImpl<typeof EchoService> {
  return {
    async echo(req, ctx) {
      if (req.delayMs > 0) {
        await sleep(req.delayMs, req.ignoreCancel ? undefined : ctx.signal);
      }
      if (req.failCode !== 0) {
        throw new ConnectError(req.failMessage || "requested failure", req.failCode as Code);
      }
      return { payload: req.payload, timeoutMs: ctx.timeoutMs() ?? 0, servedBy };
    },
    async echoClientStream(reqs) {
      const parts: Uint8Array[] = [];
      for await (const r of reqs) {
        parts.push(r.payload);
      }
      return { payload: Buffer.concat(parts), count: parts.length };
    },
    async *echoServerStream(req, ctx) {
      for (let i = 0; i < req.repeat; i++) {
        if (req.intervalMs > 0) {
          await sleep(req.intervalMs, ctx.signal);
        }
        yield { payload: req.payload, index: i };
      }
      if (req.failCode !== 0) {
        throw new ConnectError("requested failure after stream", req.failCode as Code);
      }
    },
    async *echoBidi(reqs) {
      let i = 0;
      for await (const r of reqs) {
        yield { payload: r.payload, index: i++ };
      }
    },
  };
}

export { EchoService };
