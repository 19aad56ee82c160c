import type * as http2 from "node:http2";

/**
 * HTTP2_INITIAL_WINDOW is the window every HTTP/2 connection starts with,
 * whatever SETTINGS say (RFC 9113 6.9.2): only a WINDOW_UPDATE raises it.
 */
export const HTTP2_INITIAL_WINDOW = 65_535;

/**
 * CLIENT_CONNECTION_WINDOW is the receive window a mesh client connection
 * grants its server: 64 responses of 4 KiB in flight against the initial
 * 64 KiB would make the server wait for WINDOW_UPDATEs and answer in small
 * batches. The server side grants the same by default (see
 * MeshServerHttp2Options.connectionWindowSize). Streams keep their own
 * windows and Node's per-stream backpressure.
 * @private
 */
export const CLIENT_CONNECTION_WINDOW = 1024 * 1024;

/**
 * grantConnectionWindow raises `session`'s receive window to `bytes` (one
 * WINDOW_UPDATE), when that is above the initial window. A session can
 * already be destroyed when its peer is announced (a TLS client refused for
 * its certificate reaches the server's "session" event so):
 * setLocalWindowSize would throw out of that event, an uncaught exception,
 * so a dead session is left alone.
 * @private
 */
export function grantConnectionWindow(session: http2.Http2Session, bytes: number): void {
  if (bytes <= HTTP2_INITIAL_WINDOW || session.destroyed) return;
  try {
    session.setLocalWindowSize(bytes);
  } catch {
    // Destroyed in between: nothing to grant.
  }
}
