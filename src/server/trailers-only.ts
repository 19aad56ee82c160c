import type { OutgoingHttpHeaders } from "node:http";
import * as http2 from "node:http2";

/**
 * sendErrorsAsTrailersOnly makes a gRPC response that ends without a message
 * go out as gRPC's "Trailers-Only" response: one HEADERS frame with
 * END_STREAM carrying the response headers and the status, as grpc-go,
 * grpc-java and grpc-js servers send errors. connect-node always sends
 * response headers and then trailers in a second HEADERS frame; gRFC A6 lets
 * a client (grpc-js, grpc-java, grpc-dotnet, Envoy) retry only a
 * Trailers-Only response, so without this their retry policies never retry
 * a mesh server's UNAVAILABLE.
 *
 * It changes `res` in place for gRPC requests (not gRPC-Web, not Connect):
 * `writeHead` is held until the first body byte; `end()` with no body byte
 * written and a `grpc-status` among the trailers writes the headers and the
 * trailers together and ends the stream with them. Anything else passes
 * through unchanged, in the same order.
 * @private
 */
export function sendErrorsAsTrailersOnly(
  req: http2.Http2ServerRequest,
  res: http2.Http2ServerResponse,
): void {
  const contentType = req.headers["content-type"];
  if (
    typeof contentType !== "string" ||
    !contentType.startsWith("application/grpc") ||
    contentType.startsWith("application/grpc-web")
  ) {
    return;
  }
  const writeHead = res.writeHead.bind(res) as (
    status: number,
    headers?: OutgoingHttpHeaders,
  ) => http2.Http2ServerResponse;
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const addTrailers = res.addTrailers.bind(res);
  const end = res.end.bind(res) as (...args: unknown[]) => http2.Http2ServerResponse;
  let head: { status: number; headers: OutgoingHttpHeaders } | undefined;
  let trailers: OutgoingHttpHeaders | undefined;

  const flushHead = () => {
    if (head === undefined) return;
    const h = head;
    head = undefined;
    writeHead(h.status, h.headers);
    if (trailers !== undefined) {
      addTrailers(trailers);
      trailers = undefined;
    }
  };

  res.writeHead = ((status: number, a?: unknown, b?: unknown) => {
    // writeHead(status[, statusMessage][, headers]); HTTP/2 has no status message.
    const headers = (typeof a === "string" ? b : a) as OutgoingHttpHeaders | undefined;
    head = { status, headers: { ...headers } };
    return res;
  }) as typeof res.writeHead;
  res.write = ((...args: unknown[]) => {
    flushHead();
    return write(...args);
  }) as typeof res.write;
  res.addTrailers = (t) => {
    if (head === undefined) {
      addTrailers(t);
      return;
    }
    trailers = { ...trailers, ...t };
  };
  res.end = ((...args: unknown[]) => {
    const chunk = typeof args[0] === "function" ? undefined : args[0];
    if (
      head !== undefined &&
      (chunk === undefined || chunk === null) &&
      trailers?.["grpc-status"] !== undefined
    ) {
      const merged: OutgoingHttpHeaders = { ...head.headers };
      for (const [k, v] of Object.entries(trailers)) {
        const before = merged[k];
        // A key in both (metadata set as header and as trailer) keeps both values.
        merged[k] =
          v === undefined
            ? before
            : before === undefined
              ? v
              : [...[before].flat(), ...[v].flat()].map(String);
      }
      const status = head.status;
      head = undefined;
      trailers = undefined;
      // Not writeHead: it sends at once, without END_STREAM. Headers set on
      // the response go out when end() sends them (through the original
      // writeHead, restored here), and Node then ends the stream with that
      // HEADERS frame.
      res.writeHead = writeHead as typeof res.writeHead;
      res.statusCode = status;
      for (const [k, v] of Object.entries(merged)) {
        if (v !== undefined) res.setHeader(k, v);
      }
      const stream = res.stream;
      const ended = end(...args);
      // As connect-node does after trailers: a client still sending the
      // request (a client stream failed early) is told to stop with
      // RST_STREAM(NO_ERROR), queued after the HEADERS frame just sent.
      setImmediate(() => {
        if (!stream.destroyed && stream.state.remoteClose === 0) {
          stream.close(http2.constants.NGHTTP2_NO_ERROR);
        }
      });
      return ended;
    }
    flushHead();
    return end(...args);
  }) as typeof res.end;
}
