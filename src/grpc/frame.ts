import { Code, ConnectError } from "@connectrpc/connect";

/** FRAME_HEADER_BYTES is the size of a gRPC message prefix: 1 flag byte and a 4-byte length. */
export const FRAME_HEADER_BYTES = 5;

// Bit 0 of the flag byte marks a compressed message (gRPC HTTP/2 spec,
// "Length-Prefixed-Message"); the other bits are reserved.
const COMPRESSED_FLAG = 1;

/** Frame is one gRPC length-prefixed message. */
export interface Frame {
  readonly compressed: boolean;
  readonly data: Uint8Array;
}

/** encodeFrameHeader returns the 5-byte prefix for a message of `length` bytes. */
export function encodeFrameHeader(length: number, compressed: boolean): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  header[0] = compressed ? COMPRESSED_FLAG : 0;
  new DataView(header.buffer).setUint32(1, length);
  return header;
}

/** encodeFrame prefixes `data` with the gRPC flag byte and its big-endian length. */
export function encodeFrame(data: Uint8Array, compressed: boolean): Uint8Array {
  // A pooled, uninitialised Buffer (every byte is written below) and the
  // length written by hand: no zero fill, no DataView per message.
  const n = data.byteLength;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + n);
  frame[0] = compressed ? COMPRESSED_FLAG : 0;
  frame[1] = n >>> 24;
  frame[2] = (n >>> 16) & 0xff;
  frame[3] = (n >>> 8) & 0xff;
  frame[4] = n & 0xff;
  frame.set(data, FRAME_HEADER_BYTES);
  return frame;
}

/** FrameDecoderOptions bounds a frame decoder. */
export interface FrameDecoderOptions {
  /** readMaxBytes is the largest message length accepted from a length prefix. */
  readonly readMaxBytes: number;
}

/** FrameDecoder splits a byte stream into gRPC frames. */
export interface FrameDecoder {
  /**
   * push adds bytes and returns the frames they complete. It throws a
   * ConnectError with Code.ResourceExhausted as soon as a length prefix
   * exceeds readMaxBytes, before buffering that message.
   */
  push(chunk: Uint8Array): Frame[];
  /** end throws a ConnectError with Code.Internal if a frame is incomplete. */
  end(): void;
  /** pending is how many bytes of an incomplete frame are buffered. */
  readonly pending: number;
}

/** createFrameDecoder returns a streaming decoder of gRPC length-prefixed messages. */
export function createFrameDecoder(options: FrameDecoderOptions): FrameDecoder {
  return new Decoder(options.readMaxBytes);
}

const EMPTY = new Uint8Array(0);

class Decoder implements FrameDecoder {
  // A partial prefix (fewer than 5 bytes) waits here; allocated on first use
  // (a request whose prefix arrives whole, the common case, never needs it).
  private head: Uint8Array | undefined;
  private headLength = 0;
  // Once the prefix is read: the message being filled, and how far.
  private body: Uint8Array | undefined;
  private bodyLength = 0;
  private compressed = false;

  constructor(private readonly readMaxBytes: number) {}

  get pending(): number {
    return this.body === undefined ? this.headLength : FRAME_HEADER_BYTES + this.bodyLength;
  }

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let offset = 0;
    const n = chunk.byteLength;
    while (offset < n) {
      if (this.body === undefined) {
        if (this.headLength === 0 && n - offset >= FRAME_HEADER_BYTES) {
          // Fast path: the whole prefix is in this chunk.
          const length =
            ((chunk[offset + 1] as number) * 0x1000000 +
              (((chunk[offset + 2] as number) << 16) |
                ((chunk[offset + 3] as number) << 8) |
                (chunk[offset + 4] as number))) >>>
            0;
          const compressed = ((chunk[offset] as number) & COMPRESSED_FLAG) !== 0;
          offset += FRAME_HEADER_BYTES;
          this.check(length);
          if (n - offset >= length) {
            // The whole message is here too: a view, no copy.
            frames.push({
              compressed,
              data: length === 0 ? EMPTY : chunk.subarray(offset, offset + length),
            });
            offset += length;
            continue;
          }
          this.startBody(length, compressed);
          continue;
        }
        const take = Math.min(FRAME_HEADER_BYTES - this.headLength, n - offset);
        this.head ??= new Uint8Array(FRAME_HEADER_BYTES);
        this.head.set(chunk.subarray(offset, offset + take), this.headLength);
        this.headLength += take;
        offset += take;
        if (this.headLength < FRAME_HEADER_BYTES) {
          break;
        }
        const length = new DataView(this.head.buffer).getUint32(1);
        const compressed = ((this.head[0] as number) & COMPRESSED_FLAG) !== 0;
        this.headLength = 0;
        this.check(length);
        if (length === 0) {
          frames.push({ compressed, data: EMPTY });
          continue;
        }
        this.startBody(length, compressed);
        continue;
      }
      const body = this.body;
      const take = Math.min(body.byteLength - this.bodyLength, n - offset);
      body.set(chunk.subarray(offset, offset + take), this.bodyLength);
      this.bodyLength += take;
      offset += take;
      if (this.bodyLength === body.byteLength) {
        frames.push({ compressed: this.compressed, data: body });
        this.body = undefined;
        this.bodyLength = 0;
      }
    }
    return frames;
  }

  end(): void {
    if (this.body !== undefined || this.headLength > 0) {
      const want =
        this.body === undefined ? FRAME_HEADER_BYTES : FRAME_HEADER_BYTES + this.body.byteLength;
      throw new ConnectError(
        `protocol error: incomplete message: got ${this.pending} of ${want} bytes`,
        Code.Internal,
      );
    }
  }

  private check(length: number): void {
    if (length > this.readMaxBytes) {
      throw new ConnectError(
        `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
        Code.ResourceExhausted,
      );
    }
  }

  private startBody(length: number, compressed: boolean): void {
    this.body = new Uint8Array(length);
    this.bodyLength = 0;
    this.compressed = compressed;
  }
}
