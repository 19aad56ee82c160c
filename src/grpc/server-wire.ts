import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { Code } from "@connectrpc/connect";

// Headers a handler may not set: the protocol owns them.
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "host",
  "user-agent",
  "te",
  "connection",
  "transfer-encoding",
  "keep-alive",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
]);

/** isProtocolHeader is true for headers the gRPC protocol owns (error metadata may not set them). */
export function isProtocolHeader(key: string): boolean {
  return PROTOCOL_HEADERS.has(key);
}

/**
 * readRequestHeaders copies node:http2 request headers, without
 * pseudo-headers, into `into` (repeated values joined by ", ") and returns
 * the metadata size as grpc-js counts it (names + values, pseudo-headers
 * included): one pass, no HeadersInit array in between.
 */
export function readRequestHeaders(headers: IncomingHttpHeaders, into: Headers): number {
  let n = 0;
  for (const key in headers) {
    const v = headers[key];
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      n += key.length + v.reduce((a, s) => a + s.length, 0);
      if (key.charCodeAt(0) !== 58 /* ":" */) into.append(key, v.join(", "));
    } else {
      n += key.length + v.length;
      if (key.charCodeAt(0) !== 58 /* ":" */) into.append(key, v);
    }
  }
  return n;
}

/** addHeaders copies Headers into node:http2 outgoing headers (repeated keys keep every value). */
export function addHeaders(target: OutgoingHttpHeaders, from: Headers): void {
  from.forEach((value, key) => {
    const before = target[key];
    target[key] = before === undefined ? value : [...[before].flat().map(String), value];
  });
}

/** CODE_NAMES is for messages only. */
export const codeName = (code: Code): string => Code[code] ?? String(code);
