import type { Server as HttpServer } from "node:http";
import type { Http2Server } from "node:http2";
import { createServer, type Server, type Socket } from "node:net";
import { Duplex } from "node:stream";

// Every HTTP/2 connection with prior knowledge (gRPC's h2c) opens with this
// preface; no HTTP/1.x request line starts with "PRI ".
const H2_PREFACE_START = "PRI ";

/**
 * createSniffingServer accepts TCP connections and hands each to `http1` or
 * `http2` by its first bytes, so one port serves the dashboard (HTTP/1.1) and
 * gRPC services (h2c) alike. `sockets` holds the open connections, for close.
 * @private
 */
export function createSniffingServer(
  http1: HttpServer,
  http2: Http2Server,
): { readonly server: Server; readonly sockets: Set<Socket> } {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      if (
        head.length < H2_PREFACE_START.length &&
        H2_PREFACE_START.startsWith(head.toString("latin1"))
      ) {
        return; // Too short to tell yet.
      }
      socket.off("data", sniff);
      socket.pause();
      if (head.subarray(0, H2_PREFACE_START.length).toString("latin1") === H2_PREFACE_START) {
        // node:http2 reads a net.Socket's handle directly and would miss the
        // bytes already read: a JS stream in front replays them.
        http2.emit("connection", replaying(socket, head));
      } else {
        socket.unshift(head);
        http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", sniff);
  });
  return { server, sockets };
}

/** replaying is a duplex over `socket` that first yields `head`. */
function replaying(socket: Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(error, callback) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  d.push(head);
  socket.on("data", (chunk: Buffer) => {
    if (!d.push(chunk)) socket.pause();
  });
  socket.on("end", () => d.push(null));
  socket.on("close", () => d.destroy());
  // Handlers read the peer from the stream, as from a socket.
  Object.assign(d, {
    remoteAddress: socket.remoteAddress,
    remotePort: socket.remotePort,
    remoteFamily: socket.remoteFamily,
    localAddress: socket.localAddress,
    localPort: socket.localPort,
  });
  return d;
}
