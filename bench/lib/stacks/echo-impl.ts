import type { ServiceImpl } from "@connectrpc/connect";
import { EchoService } from "../../../gen/test/v1/echo_pb.js";
import type { StackOptions } from "../protocol.js";
import { numberOption, sleep } from "./types.js";

/**
 * createBenchEchoImpl is the minimal Connect EchoService used by the Connect
 * and mesh servers: Echo returns the payload (after `delayMs` if set); the
 * other methods are left unimplemented.
 */
export function createBenchEchoImpl(
  options: StackOptions,
): Partial<ServiceImpl<typeof EchoService>> {
  const delayMs = numberOption(options, "delayMs", 0);
  if (delayMs > 0) {
    return {
      async echo(req) {
        await sleep(delayMs);
        return { payload: req.payload };
      },
    };
  }
  return {
    echo(req) {
      return { payload: req.payload };
    },
  };
}

export { EchoService };
