import type { Interceptor } from "@connectrpc/connect";
import { callAbortKey } from "../call/call-abort.js";
import { abortError } from "../call/signals.js";

/**
 * createAbortedCallGuard is the innermost server interceptor: a call whose
 * signal has already aborted when it reaches the handler (its deadline passed
 * on arrival, `grpc-timeout: 1n`, or the client left) fails with the
 * signal's reason instead of running the handler. Outer interceptors (observe,
 * deadline) still see the call, so it is logged and counted. While the
 * request is the one the lean handler started the chain with, its CallAbort
 * answers without reading (and so building) the signal.
 * @private
 */
export function createAbortedCallGuard(): Interceptor {
  return (next) => (req) => {
    const abort = req.contextValues.get(callAbortKey);
    if (abort !== undefined && abort.request === req) {
      if (abort.aborted) return Promise.reject(abortError(abort.reason));
    } else if (req.signal.aborted) {
      return Promise.reject(abortError(req.signal.reason));
    }
    return next(req);
  };
}
