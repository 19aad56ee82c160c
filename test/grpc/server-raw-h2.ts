import * as http2 from "node:http2";
import { gzipSync } from "node:zlib";

/** RawReply is the shape of one raw HTTP/2 gRPC exchange as seen on the wire. */
export interface RawReply {
  readonly headers: http2.IncomingHttpHeaders;
  /** headersEndStream: the first HEADERS frame ended the stream (Trailers-Only). */
  readonly headersEndStream: boolean;
  readonly trailers: http2.IncomingHttpHeaders | undefined;
  readonly body: Buffer;
  /** status is grpc-status from the trailers or, Trailers-Only, the headers. */
  readonly status: number | undefined;
  readonly message: string | undefined;
  /** rstCode is the RST_STREAM code when the stream was reset, else undefined. */
  readonly rstCode: number | undefined;
  readonly error: string | undefined;
}

/** frame wraps a message in a gRPC length prefix (optionally flagged compressed). */
export function frame(data: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/** gzipFrame compresses a message and frames it with the compressed flag. */
export function gzipFrame(data: Uint8Array): Buffer {
  return frame(gzipSync(data), true);
}

/** messages splits a response body into its frames' payloads. */
export function messages(body: Buffer): { compressed: boolean; data: Buffer }[] {
  const out: { compressed: boolean; data: Buffer }[] = [];
  let off = 0;
  while (body.length - off >= 5) {
    const len = body.readUInt32BE(off + 1);
    out.push({ compressed: body[off] === 1, data: body.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

/**
 * rawRequest sends one request on `session` with exactly the headers and body
 * given (no client library in the way) and records what came back.
 */
export function rawRequest(
  session: http2.ClientHttp2Session,
  path: string,
  body: Buffer | Buffer[],
  headers: http2.OutgoingHttpHeaders = {},
): Promise<RawReply> {
  return new Promise((resolve) => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let h: http2.IncomingHttpHeaders = {};
    let headersEndStream = false;
    let trailers: http2.IncomingHttpHeaders | undefined;
    let error: string | undefined;
    const chunks: Buffer[] = [];
    stream.on("response", (x, flags) => {
      h = x;
      headersEndStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", (e) => {
      error = e.message;
    });
    stream.on("close", () => {
      const all = { ...h, ...trailers };
      const s = all["grpc-status"];
      const m = all["grpc-message"];
      resolve({
        headers: h,
        headersEndStream,
        trailers,
        body: Buffer.concat(chunks),
        status: s === undefined ? undefined : Number(s),
        message: m === undefined ? undefined : decodeURIComponent(String(m)),
        rstCode: stream.rstCode === http2.constants.NGHTTP2_NO_ERROR ? undefined : stream.rstCode,
        error,
      });
    });
    // In 64 KiB writes with backpressure, as real clients send: one huge
    // write makes Node's client reset its own stream (ENHANCE_YOUR_CALM)
    // when the server answers early.
    const whole = Array.isArray(body) ? Buffer.concat(body) : body;
    void (async () => {
      for (let off = 0; off < whole.length; off += 64 * 1024) {
        if (stream.destroyed || stream.closed) return;
        if (!stream.write(whole.subarray(off, off + 64 * 1024))) {
          await new Promise((r) => {
            stream.once("drain", r);
            stream.once("close", r);
          });
        }
      }
      if (!stream.destroyed && !stream.closed) stream.end();
    })();
  });
}

/** connect opens a session and waits for it. */
export async function connect(
  url: string,
  options: http2.ClientSessionOptions = {},
): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(url, options);
  session.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  return session;
}
