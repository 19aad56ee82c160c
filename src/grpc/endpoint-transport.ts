import type * as http2 from "node:http2";
import type { Transport } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import type { IdentitySource } from "../identity/identity-source.js";
import type { ClientSessionState } from "./client-session.js";
import { createGrpcClientTransport } from "./client-transport.js";

/** EndpointTransportOptions configures the HTTP/2 connection to one endpoint. */
export interface EndpointTransportOptions {
  /** tls connects with TLS (ALPN h2); the value holds node:tls client options. */
  readonly tls?: http2.SecureClientSessionOptions;
  /** pingIntervalMs sends HTTP/2 PINGs while calls are open, to detect dead connections; default none. */
  readonly pingIntervalMs?: number;
  /** pingTimeoutMs closes a connection whose PING is not answered in time (its calls fail UNAVAILABLE); default 15 s. */
  readonly pingTimeoutMs?: number;
  /** idleConnectionTimeoutMs closes an unused connection after this long; default 15 min. */
  readonly idleConnectionTimeoutMs?: number;
  /** connectTimeoutMs bounds connection establishment; default 20 s. */
  readonly connectTimeoutMs?: number;
  /**
   * identity connects with mutual TLS as this workload (createIdentitySource),
   * verifying servers by SPIFFE ID instead of host name; new connections use
   * the current (rotated) certificate.
   */
  readonly identity?: IdentitySource;
  /**
   * serverIdentities pins the server SPIFFE IDs accepted (`spiffe://a/sa/orders`)
   * or trust domains (`spiffe://a`); default the client's own trust domain.
   * A server presenting another fails the call with UNAVAILABLE naming it.
   */
  readonly serverIdentities?: readonly string[];
  /** useBinaryFormat sends protobuf binary (default) rather than JSON. */
  readonly useBinaryFormat?: boolean;
  /** sendCompression compresses request messages of 1 KiB or more; default none. */
  readonly sendCompression?: Compression;
  /** acceptCompression lists response compressions offered in grpc-accept-encoding; default none. */
  readonly acceptCompression?: Compression[];
  /** readMaxBytes caps one response message, checked on its length prefix and while inflating; default 4 MiB. */
  readonly readMaxBytes?: number;
  /** writeMaxBytes caps one request message; default 4 MiB. */
  readonly writeMaxBytes?: number;
}

/**
 * EndpointTransport is the gRPC transport for one endpoint, owning its HTTP/2
 * session. The mesh keeps one of these per endpoint (a balancer subchannel)
 * and picks among them per attempt.
 */
export interface EndpointTransport {
  readonly address: string;
  readonly transport: Transport;
  /** state is the HTTP/2 connection state ("closed", "connecting", "open", "idle", "error"). */
  state(): ClientSessionState;
  /** close closes the connection and its open streams. */
  close(reason?: Error): void;
}

/** createEndpointTransport connects lazily: nothing happens before the first call. */
export function createEndpointTransport(
  address: string,
  options: EndpointTransportOptions = {},
): EndpointTransport {
  const transport = createGrpcClientTransport(address, {
    tls: options.tls,
    identity: options.identity,
    serverIdentities: options.serverIdentities,
    pingIntervalMs: options.pingIntervalMs,
    pingTimeoutMs: options.pingTimeoutMs,
    idleConnectionTimeoutMs: options.idleConnectionTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    useBinaryFormat: options.useBinaryFormat,
    sendCompression: options.sendCompression,
    acceptCompression: options.acceptCompression,
    readMaxBytes: options.readMaxBytes,
    writeMaxBytes: options.writeMaxBytes,
  });
  return {
    address,
    transport,
    state: () => transport.state(),
    close: (reason) => transport.close(reason),
  };
}
