import type { StreamResponse, UnaryResponse } from "@connectrpc/connect";
import { onStreamEnd } from "./stream-end.js";

/**
 * Settled is told once how a response ended: `error` undefined on success,
 * and the response when one arrived (a stream's, once it has ended).
 */
export type Settled<R> = (error: unknown, res: R | undefined) => void;

/**
 * onSettled calls `fn` exactly once when the response settles: when a unary
 * call answers or fails, when a stream fails before its header, and when a
 * response stream ends, fails or is abandoned by its reader. Per-call
 * bookkeeping (breakers, limits, loads, log lines) hangs off it.
 */
export function onSettled<R extends UnaryResponse | StreamResponse>(
  pending: Promise<R>,
  fn: Settled<R>,
): Promise<R> {
  // then, not an async function: one promise and one hop less per layer.
  return pending.then(
    (res) => {
      if (!res.stream) {
        fn(undefined, res);
        return res;
      }
      return { ...res, message: onStreamEnd(res.message, (e) => fn(e, res)) };
    },
    (e: unknown) => {
      fn(e, undefined);
      throw e;
    },
  );
}
