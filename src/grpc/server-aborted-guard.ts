import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * createAbortedCallGuard is the innermost server interceptor: a call whose
 * signal has already aborted when it reaches the handler (its deadline passed
 * on arrival, `grpc-timeout: 1n`, or the client left) fails with the
 * signal's reason instead of running the handler. Outer interceptors (observe,
 * deadline) still see the call, so it is logged and counted.
 * @private
 */
export function createAbortedCallGuard(): Interceptor {
  return (next) => (req) => {
    if (req.signal.aborted) {
      return Promise.reject(
        ConnectError.from(
          req.signal.reason ?? new ConnectError("call was cancelled", Code.Canceled),
          Code.Canceled,
        ),
      );
    }
    return next(req);
  };
}
