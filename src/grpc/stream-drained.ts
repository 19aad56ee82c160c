import type * as http2 from "node:http2";

/** drained resolves once an HTTP/2 stream takes writes again, or has closed. */
export function drained(stream: http2.Http2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}
