import type * as http2 from "node:http2";

/**
 * RESERVED_GRPC_HEADERS are the headers the gRPC protocol itself sets; user
 * metadata with these names is not copied onto the wire (as Connect's
 * mergeNonProtocolHeaders does for the gRPC protocol).
 */
export const RESERVED_GRPC_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-message-type",
]);

// Connection-specific headers are forbidden in HTTP/2 (RFC 9113 8.2.2): node
// throws ERR_HTTP2_INVALID_CONNECTION_HEADERS if one is set.
const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "host",
]);

/**
 * headersFromNode converts node:http2 incoming headers or trailers to a Fetch
 * `Headers`, skipping pseudo headers; repeated values are appended (a Headers
 * reads them joined by ", ", as Connect does).
 */
export function headersFromNode(nodeHeaders: http2.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const key in nodeHeaders) {
    if (key.charCodeAt(0) === 0x3a /* ":" */) {
      continue;
    }
    const v = nodeHeaders[key];
    if (typeof v === "string") {
      headers.append(key, v);
    } else if (Array.isArray(v)) {
      for (const e of v) headers.append(key, e);
    } else if (v !== undefined) {
      headers.append(key, String(v));
    }
  }
  return headers;
}

/**
 * headersToNode copies a Fetch `Headers` into node:http2 outgoing headers
 * (lower-case names, repeated values already joined by ", "), skipping the
 * names in `skip` and HTTP/1 connection headers, which HTTP/2 forbids.
 */
export function headersToNode(
  headers: Headers,
  into: http2.OutgoingHttpHeaders,
  skip: ReadonlySet<string> = RESERVED_GRPC_HEADERS,
): http2.OutgoingHttpHeaders {
  headers.forEach((value, key) => {
    if (!skip.has(key) && !CONNECTION_HEADERS.has(key)) {
      into[key] = value;
    }
  });
  return into;
}
