import type * as http2 from "node:http2";
import type { Transport } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

/** EndpointTransportOptions configures the HTTP/2 connection to one endpoint. */
export interface EndpointTransportOptions {
  /** tls connects with TLS (ALPN h2); the value holds node:tls client options. */
  readonly tls?: http2.SecureClientSessionOptions;
  /** pingIntervalMs sends HTTP/2 PINGs to detect dead connections; Connect's default. */
  readonly pingIntervalMs?: number;
  /** pingTimeoutMs closes a connection whose PING is not answered in time. */
  readonly pingTimeoutMs?: number;
  /** idleConnectionTimeoutMs closes an unused connection after this long. */
  readonly idleConnectionTimeoutMs?: number;
  /** connectTimeoutMs bounds connection establishment. */
  readonly connectTimeoutMs?: number;
  /** useBinaryFormat sends protobuf binary (default) rather than JSON. */
  readonly useBinaryFormat?: boolean;
  /** sendCompression compresses request messages; default none. */
  readonly sendCompression?: Compression;
  /** acceptCompression lists response compressions offered; Connect's default (gzip, br). */
  readonly acceptCompression?: Compression[];
  /** readMaxBytes caps response message size. */
  readonly readMaxBytes?: number;
  /** writeMaxBytes caps request message size. */
  readonly writeMaxBytes?: number;
}

/**
 * EndpointTransport is the gRPC transport for one endpoint, owning one HTTP/2
 * session manager. A stock Connect transport is bound to one origin, so the
 * mesh keeps one of these per endpoint and picks among them per attempt.
 */
export interface EndpointTransport {
  readonly address: string;
  readonly transport: Transport;
  /** state is the HTTP/2 connection state ("closed", "connecting", "open", "idle", ...). */
  state(): ReturnType<Http2SessionManager["state"]>;
  /** close closes the connection and its open streams. */
  close(reason?: Error): void;
}

/** createEndpointTransport connects lazily: nothing happens before the first call. */
export function createEndpointTransport(
  address: string,
  options: EndpointTransportOptions = {},
): EndpointTransport {
  const baseUrl = `${options.tls === undefined ? "http" : "https"}://${address}`;
  const pingOptions = {
    ...(options.pingIntervalMs === undefined ? {} : { pingIntervalMs: options.pingIntervalMs }),
    ...(options.pingTimeoutMs === undefined ? {} : { pingTimeoutMs: options.pingTimeoutMs }),
    ...(options.idleConnectionTimeoutMs === undefined
      ? {}
      : { idleConnectionTimeoutMs: options.idleConnectionTimeoutMs }),
    ...(options.connectTimeoutMs === undefined
      ? {}
      : { connectTimeoutMs: options.connectTimeoutMs }),
  };
  const sessionManager = new Http2SessionManager(baseUrl, pingOptions, options.tls);
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    ...(options.useBinaryFormat === undefined ? {} : { useBinaryFormat: options.useBinaryFormat }),
    ...(options.sendCompression === undefined ? {} : { sendCompression: options.sendCompression }),
    ...(options.acceptCompression === undefined
      ? {}
      : { acceptCompression: options.acceptCompression }),
    ...(options.readMaxBytes === undefined ? {} : { readMaxBytes: options.readMaxBytes }),
    ...(options.writeMaxBytes === undefined ? {} : { writeMaxBytes: options.writeMaxBytes }),
  });
  return {
    address,
    transport,
    state: () => sessionManager.state(),
    close: (reason) => sessionManager.abort(reason),
  };
}
