import type * as http2 from "node:http2";
import { HTTP2_INITIAL_WINDOW } from "./connection-window.js";

/** MeshServerHttp2Options are the HTTP/2 limits the server announces and enforces. */
export interface MeshServerHttp2Options {
  /**
   * maxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE, the largest header
   * list (uncompressed) a client may send; default 128 KiB. Above it Node
   * resets that stream only (ENHANCE_YOUR_CALM); below it a gRPC call with
   * metadata over `maxMetadataBytes` is answered RESOURCE_EXHAUSTED. Node 20's
   * HTTP/2 stack treats one header field over 64 KiB, or a header block in
   * more than 8 CONTINUATION frames (about 144 KiB on the wire), as a
   * connection error whatever this says: the calls on that connection fail.
   */
  readonly maxHeaderListSize?: number;
  /** maxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS per connection; default 1_000. */
  readonly maxConcurrentStreams?: number;
  /**
   * maxSessionMemory (MiB) bounds the memory one connection may hold in
   * nghttp2 (header blocks, queued frames); default 32. Beyond it new streams
   * are refused (ENHANCE_YOUR_CALM).
   */
  readonly maxSessionMemory?: number;
  /**
   * connectionWindowSize is the connection's receive flow-control window
   * (bytes), announced with a WINDOW_UPDATE when a client connects; default
   * 1 MiB (grpc-java's window). HTTP/2 starts every connection at 65,535
   * bytes whatever SETTINGS say, so without it a client with more than
   * 64 KiB of requests in flight (16 calls of 4 KiB) stalls until the server
   * has read half of them, and the server serves them in small batches.
   * Per-stream windows (and Node's per-stream backpressure) are unchanged.
   */
  readonly connectionWindowSize?: number;
}

/** HTTP2_DEFAULTS are the server's HTTP/2 limits when none are given. */
export const HTTP2_DEFAULTS: Required<MeshServerHttp2Options> = {
  // Large enough that 100 KiB of metadata still reaches the handler's limit
  // check (an answer, not a reset), and under the ~144 KiB block where Node
  // gives up on the whole connection, so the range between resets one stream.
  maxHeaderListSize: 128 * 1024,
  // grpc-go and Node default to unlimited; a bound stops one client from
  // opening millions of streams, and is far above the mesh's per-endpoint use.
  maxConcurrentStreams: 1_000,
  // Node's default is 10 MiB; header blocks up to maxHeaderListSize on many
  // streams need more before the session refuses work.
  maxSessionMemory: 32,
  // 64 calls of 4 KiB in flight (256 KiB) fit without a stall, with room to
  // spare; memory stays bounded by maxSessionMemory and per-stream windows.
  connectionWindowSize: 1024 * 1024,
};

/** validateHttp2Options throws a RangeError naming a bad value. @private */
export function validateHttp2Options(o: MeshServerHttp2Options | undefined): void {
  if (o === undefined) return;
  const check = (name: string, v: number | undefined, min: number, max: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min && v <= max)) {
      throw new RangeError(`http2.${name} ${v} must be an integer in ${min}..${max}`);
    }
  };
  check("maxHeaderListSize", o.maxHeaderListSize, 1024, 2 ** 32 - 1);
  check("maxConcurrentStreams", o.maxConcurrentStreams, 1, 2 ** 32 - 1);
  check("maxSessionMemory", o.maxSessionMemory, 1, 1 << 20);
  // HTTP/2's initial window is the floor; 2^31-1 is the largest it allows (RFC 9113 6.9.1).
  check("connectionWindowSize", o.connectionWindowSize, HTTP2_INITIAL_WINDOW, 2 ** 31 - 1);
}

/**
 * connectionWindowSize is the receive window a new session is given (see
 * MeshServerHttp2Options.connectionWindowSize). @private
 */
export function connectionWindowSize(o: MeshServerHttp2Options | undefined): number {
  return o?.connectionWindowSize ?? HTTP2_DEFAULTS.connectionWindowSize;
}

/** http2ServerOptions turns mesh HTTP/2 options into node:http2 server options. @private */
export function http2ServerOptions(o: MeshServerHttp2Options | undefined): http2.ServerOptions {
  const v = { ...HTTP2_DEFAULTS, ...o };
  return {
    maxSessionMemory: v.maxSessionMemory,
    settings: {
      maxHeaderListSize: v.maxHeaderListSize,
      maxConcurrentStreams: v.maxConcurrentStreams,
    },
  };
}
