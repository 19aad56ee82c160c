import * as http2 from "node:http2";

/** RawGrpcResult is what a hand-made gRPC request got back. */
export interface RawGrpcResult {
  readonly status: number | undefined;
  readonly message: string | undefined;
  readonly headers: http2.IncomingHttpHeaders;
  readonly trailers: http2.IncomingHttpHeaders;
  /** message0 is the first response message's bytes, without its envelope. */
  readonly message0: Uint8Array | undefined;
}

/**
 * rawGrpcCall sends one gRPC request with exactly the headers given, bypassing
 * every client library, so tests can send what no well-behaved client would.
 */
export function rawGrpcCall(
  url: string,
  path: string,
  message: Uint8Array,
  headers: Record<string, string>,
): Promise<RawGrpcResult> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let responseHeaders: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => {
      responseHeaders = h;
    });
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (t) => {
      trailers = t;
    });
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      // A trailers-only response carries grpc-status in the headers.
      const all = { ...responseHeaders, ...trailers };
      const status = all["grpc-status"];
      const msg = all["grpc-message"];
      const body = Buffer.concat(chunks);
      const message0 = body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : undefined;
      resolve({
        status: status === undefined ? undefined : Number(status),
        message: msg === undefined ? undefined : decodeURIComponent(String(msg)),
        headers: responseHeaders,
        trailers,
        message0,
      });
    });
    const frame = Buffer.alloc(5 + message.length);
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    stream.end(frame);
  });
}
