// A bare node:http2 server for client tests that need a peer misbehaving in
// exact ways (GOAWAY, REFUSED_STREAM, gzip bombs, bad prefixes), plus a TCP
// proxy that can stop forwarding to simulate a peer that went silent.

import * as http2 from "node:http2";
import * as net from "node:net";
import { encodeFrame } from "../../src/grpc/frame.js";

/** RawH2Server is a running bare HTTP/2 server. */
export interface RawH2Server {
  readonly address: string;
  readonly server: http2.Http2Server;
  /** sessions counts the connections accepted so far. */
  sessions: number;
  close(): Promise<void>;
}

/** startRawH2Server serves every stream with `onStream`. */
export async function startRawH2Server(
  onStream: (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    session: http2.ServerHttp2Session,
  ) => void,
): Promise<RawH2Server> {
  const server = http2.createServer();
  const open = new Set<http2.ServerHttp2Session>();
  const result: RawH2Server = {
    address: "",
    server,
    sessions: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on("session", (s) => {
    result.sessions++;
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    onStream(stream, headers, stream.session as http2.ServerHttp2Session);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return Object.assign(result, { address: `127.0.0.1:${port}` });
}

/** GRPC_OK_HEADERS are the response headers of a well-formed gRPC answer. */
export const GRPC_OK_HEADERS = { ":status": 200, "content-type": "application/grpc" };

/** readRequest collects a gRPC request body. */
export function readRequest(stream: http2.ServerHttp2Stream): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    stream.on("data", (c: Buffer) => parts.push(c));
    stream.on("end", () => resolve(Buffer.concat(parts)));
  });
}

/** echoUnary answers a unary call with the request's message bytes and OK. */
export async function echoUnary(stream: http2.ServerHttp2Stream): Promise<void> {
  const body = await readRequest(stream);
  if (stream.destroyed) return;
  stream.respond(GRPC_OK_HEADERS, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
  stream.end(encodeFrame(body.subarray(5), false));
}

/** SilenceableProxy forwards TCP to a target until `silence()` stops it both ways. */
export interface SilenceableProxy {
  readonly address: string;
  silence(): void;
  close(): Promise<void>;
}

/** startProxy starts a TCP proxy to `target` ("host:port"). */
export async function startProxy(target: string): Promise<SilenceableProxy> {
  const [host, port] = target.split(":") as [string, string];
  const sockets = new Set<net.Socket>();
  let silent = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), host);
    sockets.add(client);
    sockets.add(upstream);
    client.on("data", (d) => {
      if (!silent) upstream.write(d);
    });
    upstream.on("data", (d) => {
      if (!silent) client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", end);
    upstream.on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const p = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${p}`,
    silence: () => {
      silent = true;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
