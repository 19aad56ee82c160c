import { hash } from "node:crypto";
import { create, type DescMethod, isMessage, type Message, toBinary } from "@bufbuild/protobuf";
import { isCanonicalEncoding } from "./canonical-encoding.js";

/**
 * requestFingerprint is the SHA-256 (hex) of the method's full name and the
 * request's binary encoding. Two requests with the same key are "the same"
 * when their fingerprints match.
 *
 * protobuf-es encodes deterministically for a given message, and keeps unknown
 * fields, so a retry of the same bytes matches. Two clients that encode one
 * logical map in different orders produce different fingerprints: a retry is
 * expected to resend the same request, not a rebuilt one.
 *
 * `received`, when given, is the encoding the message was decoded from. When
 * those bytes are exactly what protobuf-es would write for the message
 * (isCanonicalEncoding) they are hashed as they are; otherwise the message is
 * encoded again. Either way the fingerprint is the hash of the re-encoded
 * message: the same value for one logical request whatever the client
 * library's encoding, and the same as stored by earlier versions.
 */
export function requestFingerprint(
  method: DescMethod,
  message: Message,
  received?: Uint8Array,
): string {
  const body =
    received !== undefined && isCanonicalEncoding(method.input, received)
      ? received
      : toBinary(
          method.input,
          isMessage(message, method.input) ? message : create(method.input, message),
        );
  const prefix = methodPrefix(method);
  // One buffer and the one-shot hash: a Hash object per call cost ~5x more.
  // The hash is synchronous, so one scratch buffer serves every call up to
  // SCRATCH_BYTES: no allocation per call (~5 us at 4 KiB).
  const length = prefix.byteLength + body.byteLength;
  const input = length <= SCRATCH_BYTES ? scratch : Buffer.allocUnsafe(length);
  input.set(prefix, 0);
  input.set(body, prefix.byteLength);
  return hash("sha256", input.subarray(0, length), "hex");
}

// Covers most requests; a larger one gets a buffer of its own.
const SCRATCH_BYTES = 64 * 1024;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

// The `package.Service/Method\n` prefix of each method, encoded once.
const prefixes = new WeakMap<DescMethod, Uint8Array>();

function methodPrefix(method: DescMethod): Uint8Array {
  let prefix = prefixes.get(method);
  if (prefix === undefined) {
    prefix = Buffer.from(`${method.parent.typeName}/${method.name}\n`);
    prefixes.set(method, prefix);
  }
  return prefix;
}
