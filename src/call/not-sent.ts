import { ConnectError } from "@connectrpc/connect";

// Node and nghttp2 error codes that prove the request never reached a server:
// the connection was never made, or the server refused the stream before
// processing it (REFUSED_STREAM, or a GOAWAY that excluded it).
const NOT_SENT_CODES = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
]);

/**
 * wasNotSent says whether a failed attempt provably never reached a server:
 * a connection that was refused or never established anywhere in the cause
 * chain, or a stream the server refused (REFUSED_STREAM). Such an attempt may
 * be retried whatever the method's idempotency.
 */
export function wasNotSent(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== undefined && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NOT_SENT_CODES.has(code)) return true;
    const message = e instanceof ConnectError ? e.rawMessage : (e as { message?: unknown }).message;
    if (typeof message === "string" && message.includes("NGHTTP2_REFUSED_STREAM")) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
