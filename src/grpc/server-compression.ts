import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";

/**
 * boundedCompression wraps a connect-node compression so that a corrupt body
 * is INTERNAL, as gRPC's statuscodes.md says (connect-node answers
 * INVALID_ARGUMENT). Inflating is bounded by the `readMaxBytes` Connect
 * passes (zlib `maxOutputLength`: it stops at the limit, RESOURCE_EXHAUSTED).
 * @private
 */
export function boundedCompression(base: Compression): Compression {
  return {
    name: base.name,
    compress: (bytes) => base.compress(bytes),
    async decompress(bytes, readMaxBytes) {
      try {
        return await base.decompress(bytes, readMaxBytes);
      } catch (e) {
        const ce = ConnectError.from(e);
        if (ce.code === Code.ResourceExhausted) throw ce;
        throw new ConnectError(
          `${base.name} decompression failed: corrupt message`,
          Code.Internal,
          undefined,
          undefined,
          e,
        );
      }
    },
  };
}

/** DEFAULT_SERVER_COMPRESSION is connect-node's default set (gzip, br), bounded. */
export const DEFAULT_SERVER_COMPRESSION: readonly Compression[] = [
  boundedCompression(compressionGzip),
  boundedCompression(compressionBrotli),
];
