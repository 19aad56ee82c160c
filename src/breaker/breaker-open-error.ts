/**
 * BreakerOpenError is the cause of a ConnectError raised by an open circuit
 * breaker: the request was not sent, and retrying it would only meet the same
 * open breaker, so the retry interceptor gives up at once.
 */
export class BreakerOpenError extends Error {
  override readonly name = "BreakerOpenError";
}

/**
 * withoutStack builds an error without capturing a stack trace. An open
 * breaker refuses every call for seconds at a time, so its refusal must cost
 * next to nothing: capturing a stack is most of the cost of an Error (about
 * half of a refused call's CPU in a profile), allocates, and would only name
 * the interceptor chain. The refusal's message says everything there is to say.
 */
export function withoutStack<E extends Error>(build: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return build();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
