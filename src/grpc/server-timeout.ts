import { Code, ConnectError } from "@connectrpc/connect";
import { MAX_TIMER_DELAY_MS } from "../clock.js";
import { parseGrpcTimeout } from "../grpc-timeout.js";

/** MAX_TIMER_MS is the clock's MAX_TIMER_DELAY_MS: a deadline past it counts as none. */
export const MAX_TIMER_MS = MAX_TIMER_DELAY_MS;

/** ServerDeadline is what the server does with a request's `grpc-timeout`. */
export type ServerDeadline =
  | { readonly kind: "none" }
  | { readonly kind: "expired" }
  | { readonly kind: "deadline"; readonly timeoutMs: number }
  | { readonly kind: "invalid"; readonly error: ConnectError };

const NONE: ServerDeadline = { kind: "none" };
const EXPIRED: ServerDeadline = { kind: "expired" };

/**
 * decideServerDeadline parses `grpc-timeout` strictly: absent or beyond
 * MAX_TIMER_MS is none, under 1 ms has passed on arrival (answer
 * DEADLINE_EXCEEDED without running the handler), above `maxTimeoutMs` is
 * INVALID_ARGUMENT, a malformed value INVALID_ARGUMENT quoting it.
 */
export function decideServerDeadline(
  value: string | undefined,
  maxTimeoutMs: number | undefined,
): ServerDeadline {
  if (value === undefined) return NONE;
  let timeoutMs: number | undefined;
  try {
    timeoutMs = parseGrpcTimeout(value);
  } catch (e) {
    return { kind: "invalid", error: e as ConnectError };
  }
  if (timeoutMs === undefined) return NONE;
  if (maxTimeoutMs !== undefined && timeoutMs > maxTimeoutMs) {
    return {
      kind: "invalid",
      error: new ConnectError(
        `timeout ${timeoutMs}ms must be <= ${maxTimeoutMs}`,
        Code.InvalidArgument,
      ),
    };
  }
  if (timeoutMs < 1) return EXPIRED;
  if (timeoutMs > MAX_TIMER_MS) return NONE;
  return { kind: "deadline", timeoutMs };
}

/**
 * clampFallbackTimeout rewrites a request's deadline header in place before
 * connect-node parses it: a `grpc-timeout` (gRPC-Web) or `connect-timeout-ms`
 * past MAX_TIMER_MS is removed (Connect would arm a 1 ms timer), one under
 * 1 ms becomes `0m`, which Connect treats as already expired so the deadline
 * interceptor answers DEADLINE_EXCEEDED without running the handler. Values
 * over `maxTimeoutMs` and malformed ones are left for Connect to reject.
 */
export function clampFallbackTimeout(
  headers: Record<string, string | string[] | undefined>,
  maxTimeoutMs: number | undefined,
): void {
  const grpc = headers["grpc-timeout"];
  if (typeof grpc === "string") {
    const d = decideServerDeadline(grpc, maxTimeoutMs);
    if (d.kind === "none") delete headers["grpc-timeout"];
    else if (d.kind === "expired") headers["grpc-timeout"] = "0m";
  }
  const connect = headers["connect-timeout-ms"];
  if (typeof connect === "string" && /^\d{1,10}$/.test(connect)) {
    const ms = Number(connect);
    if (ms > MAX_TIMER_MS && (maxTimeoutMs === undefined || ms <= maxTimeoutMs)) {
      delete headers["connect-timeout-ms"];
    }
  }
}
