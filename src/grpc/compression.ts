import { constants as bufferConstants } from "node:buffer";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";

const gzipAsync = promisify(zlib.gzip);

function toArrayBufferView(b: Buffer): Uint8Array<ArrayBuffer> {
  return new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength);
}

/** gzip compresses one message. */
export async function gzip(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  return toArrayBufferView(await gzipAsync(data));
}

/**
 * gunzipBounded inflates one gzip message, stopping as soon as the output
 * passes readMaxBytes (zlib's maxOutputLength aborts mid-stream, so a small
 * "bomb" never inflates past the limit): that is a ConnectError with
 * Code.ResourceExhausted; input that is not valid gzip is Code.Internal, as
 * gRPC's status-code table asks for a corrupt compressed message.
 */
export function gunzipBounded(
  data: Uint8Array,
  readMaxBytes: number,
): Promise<Uint8Array<ArrayBuffer>> {
  if (data.byteLength === 0) {
    return Promise.resolve(new Uint8Array(0));
  }
  // maxOutputLength must be in [1, buffer max]; a limit of 0 still rejects
  // any non-empty output below.
  const maxOutputLength = Math.min(Math.max(1, readMaxBytes), bufferConstants.MAX_LENGTH);
  return new Promise((resolve, reject) => {
    zlib.gunzip(data, { maxOutputLength }, (err, out) => {
      if (err !== null) {
        reject(decompressError(err, readMaxBytes));
      } else if (out.byteLength > readMaxBytes) {
        reject(tooLarge(readMaxBytes));
      } else {
        resolve(toArrayBufferView(out));
      }
    });
  });
}

function tooLarge(readMaxBytes: number, cause?: unknown): ConnectError {
  return new ConnectError(
    `message is larger than configured readMaxBytes ${readMaxBytes} after decompression`,
    Code.ResourceExhausted,
    undefined,
    undefined,
    cause,
  );
}

/**
 * decompressError maps a failed decompression to its gRPC code: over the
 * limit is RESOURCE_EXHAUSTED, anything else (corrupt data) INTERNAL.
 * ConnectErrors from a Connect `Compression` are remapped the same way
 * (Connect says INVALID_ARGUMENT for corrupt data).
 */
export function decompressError(err: unknown, readMaxBytes: number): ConnectError {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "ERR_BUFFER_TOO_LARGE" || code === Code.ResourceExhausted) {
    return tooLarge(readMaxBytes, err);
  }
  const reason = err instanceof ConnectError ? err.rawMessage : String(err);
  return new ConnectError(
    `decompression failed: ${reason}`,
    Code.Internal,
    undefined,
    undefined,
    err,
  );
}

/**
 * compressionGzip is gzip as a Connect `Compression`, with bounded
 * inflation and gRPC's status codes (see gunzipBounded).
 */
export const compressionGzip: Compression = {
  name: "gzip",
  compress: gzip,
  decompress: gunzipBounded,
};
