import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Code, type ConnectError } from "@connectrpc/connect";

// Server-side gRPC wire pieces. The client helpers' src/grpc primitives cover
// the same ground; these stay server-only and minimal so the handler does not
// wait on them.

/** GrpcFrame is one length-prefixed gRPC message. */
export interface GrpcFrame {
  readonly compressed: boolean;
  readonly data: Uint8Array;
}

/** FrameTooLargeError: a length prefix over `readMaxBytes`, detected before buffering. */
export class FrameTooLargeError extends Error {
  constructor(
    readonly length: number,
    readonly readMaxBytes: number,
  ) {
    super(`message size ${length} is larger than configured readMaxBytes ${readMaxBytes}`);
  }
}

/** ServerFrameDecoder splits request bytes into frames. */
export interface ServerFrameDecoder {
  /** push returns the frames completed by `chunk`; throws FrameTooLargeError on a prefix over the limit. */
  push(chunk: Buffer): GrpcFrame[];
  /** pending is true when a frame is partly received (a truncated body at end of stream). */
  readonly pending: boolean;
}

/** createServerFrameDecoder decodes gRPC frames, checking each length prefix against readMaxBytes. */
export function createServerFrameDecoder(readMaxBytes: number): ServerFrameDecoder {
  let buf: Buffer | undefined;
  return {
    push(chunk) {
      buf = buf === undefined || buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const out: GrpcFrame[] = [];
      let off = 0;
      while (buf.length - off >= 5) {
        const len = buf.readUInt32BE(off + 1);
        if (len > readMaxBytes) {
          throw new FrameTooLargeError(len, readMaxBytes);
        }
        if (buf.length - off - 5 < len) break;
        const flags = buf[off] as number;
        out.push({ compressed: (flags & 1) === 1, data: buf.subarray(off + 5, off + 5 + len) });
        off += 5 + len;
      }
      buf = off === buf.length ? undefined : buf.subarray(off);
      return out;
    },
    get pending() {
      return buf !== undefined && buf.length > 0;
    },
  };
}

/** encodeServerFrame prefixes `data` with the gRPC frame header. */
export function encodeServerFrame(data: Uint8Array, compressed: boolean): Buffer {
  const out = Buffer.allocUnsafe(5 + data.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

/**
 * encodeGrpcMessageValue percent-encodes a status message per the gRPC spec:
 * only bytes outside 0x20-0x7E and `%` (UTF-8 first), so grpc-js, which
 * decodes with decodeURI, shows "boom: x" exactly.
 */
export function encodeGrpcMessageValue(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte < 0x20 || byte > 0x7e || byte === 0x25
        ? `%${byte.toString(16).toUpperCase().padStart(2, "0")}`
        : String.fromCharCode(byte);
  }
  return out;
}

/** encodeStatusDetailsBin renders google.rpc.Status for `grpc-status-details-bin` (base64). */
export function encodeStatusDetailsBin(error: ConnectError): string {
  const w = new BinaryWriter();
  w.tag(1, 0).int32(error.code);
  if (error.rawMessage !== "") w.tag(2, 2).string(error.rawMessage);
  for (const d of error.details) {
    let typeUrl: string;
    let value: Uint8Array;
    if ("desc" in d) {
      typeUrl = `type.googleapis.com/${d.desc.typeName}`;
      value = toBinary(d.desc, create(d.desc, d.value as MessageInitShape<DescMessage>));
    } else {
      typeUrl = `type.googleapis.com/${d.type}`;
      value = d.value;
    }
    w.tag(3, 2).fork().tag(1, 2).string(typeUrl).tag(2, 2).bytes(value).join();
  }
  return Buffer.from(w.finish()).toString("base64").replace(/=+$/, "");
}

// Headers a handler may not set: the protocol owns them.
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "host",
  "user-agent",
  "te",
  "connection",
  "transfer-encoding",
  "keep-alive",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-timeout",
]);

/** isProtocolHeader is true for headers the gRPC protocol owns (error metadata may not set them). */
export function isProtocolHeader(key: string): boolean {
  return PROTOCOL_HEADERS.has(key);
}

/** requestHeaderInit turns node:http2 request headers into a HeadersInit, without pseudo-headers. */
export function requestHeaderInit(headers: IncomingHttpHeaders): [string, string][] {
  const out: [string, string][] = [];
  for (const key in headers) {
    if (key.charCodeAt(0) === 58 /* ":" */) continue;
    const v = headers[key];
    if (v === undefined) continue;
    out.push([key, Array.isArray(v) ? v.join(", ") : v]);
  }
  return out;
}

/** metadataBytes is the size of the request metadata as grpc-js counts it (names + values). */
export function metadataBytes(headers: IncomingHttpHeaders): number {
  let n = 0;
  for (const key in headers) {
    const v = headers[key];
    if (v === undefined) continue;
    n += key.length + (Array.isArray(v) ? v.reduce((a, s) => a + s.length, 0) : v.length);
  }
  return n;
}

/** addHeaders copies Headers into node:http2 outgoing headers (repeated keys keep every value). */
export function addHeaders(target: OutgoingHttpHeaders, from: Headers): void {
  from.forEach((value, key) => {
    const before = target[key];
    target[key] = before === undefined ? value : [...[before].flat().map(String), value];
  });
}

/** CODE_NAMES is for messages only. */
export const codeName = (code: Code): string => Code[code] ?? String(code);
