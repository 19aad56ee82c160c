import { createHash } from "node:crypto";
import { create, type DescMethod, isMessage, type Message, toBinary } from "@bufbuild/protobuf";

/**
 * requestFingerprint is the SHA-256 (hex) of the method's full name and the
 * request's binary encoding. Two requests with the same key are "the same"
 * when their fingerprints match.
 *
 * protobuf-es encodes deterministically for a given message, and keeps unknown
 * fields, so a retry of the same bytes matches. Two clients that encode one
 * logical map in different orders produce different fingerprints: a retry is
 * expected to resend the same request, not a rebuilt one.
 */
export function requestFingerprint(method: DescMethod, message: Message): string {
  const msg = isMessage(message, method.input) ? message : create(method.input, message);
  return createHash("sha256")
    .update(`${method.parent.typeName}/${method.name}\n`)
    .update(toBinary(method.input, msg))
    .digest("hex");
}
