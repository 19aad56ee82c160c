/**
 * BreakerOpenError is the cause of a ConnectError raised by an open circuit
 * breaker: the request was not sent, and retrying it would only meet the same
 * open breaker, so the retry interceptor gives up at once.
 */
export class BreakerOpenError extends Error {
  override readonly name = "BreakerOpenError";
}
