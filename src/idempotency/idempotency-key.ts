import { hash } from "node:crypto";

export { IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_REPLAYED_HEADER } from "../call/headers.js";

/** IDEMPOTENCY_KEY_MAX_LENGTH is the longest key accepted (as in the IETF draft's examples). */
export const IDEMPOTENCY_KEY_MAX_LENGTH = 255;

/**
 * KeyCheck is the verdict on an `idempotency-key` header value: the key, or
 * why it is unusable (a message safe to send back: it never contains the key).
 */
export type KeyCheck =
  | { readonly ok: true; readonly key: string }
  | { readonly ok: false; readonly problem: string };

// Printable ASCII without space: 0x21-0x7E.
const PRINTABLE = /^[\x21-\x7e]+$/;
const FIRST_BAD = /[^\x21-\x7e]/;

/**
 * checkIdempotencyKey validates a header value as read from Connect's
 * `Headers`: 1-255 characters of printable ASCII (0x21-0x7E) and exactly one
 * value.
 *
 * A header sent twice arrives joined by ", ". A valid key can hold neither a
 * comma followed by a space nor any space, so the value is invalid either way;
 * the split only chooses the message: when every ", "-separated part is a
 * valid key on its own, the caller most likely sent the header twice.
 */
export function checkIdempotencyKey(value: string): KeyCheck {
  if (value === "") {
    return { ok: false, problem: "idempotency-key is empty" };
  }
  if (PRINTABLE.test(value) && value.length <= IDEMPOTENCY_KEY_MAX_LENGTH) {
    return { ok: true, key: value };
  }
  const parts = value.split(", ");
  if (parts.length > 1 && parts.every((p) => p !== "" && PRINTABLE.test(p))) {
    return {
      ok: false,
      problem: `idempotency-key must have exactly one value, got ${parts.length}`,
    };
  }
  const bad = FIRST_BAD.exec(value);
  if (bad !== null) {
    const code = bad[0].codePointAt(0) ?? 0;
    return {
      ok: false,
      problem: `idempotency-key (sha256 ${keyDigest(value)}) has character U+${code
        .toString(16)
        .toUpperCase()
        .padStart(4, "0")} at index ${bad.index}, want printable ASCII 0x21-0x7E`,
    };
  }
  return {
    ok: false,
    problem: `idempotency-key (sha256 ${keyDigest(value)}) is ${value.length} characters, want 1-${IDEMPOTENCY_KEY_MAX_LENGTH}`,
  };
}

/**
 * keyDigest is a short SHA-256 prefix (12 hex digits) naming a key in logs,
 * events and error messages without revealing it.
 */
export function keyDigest(key: string): string {
  return hash("sha256", key, "hex").slice(0, 12);
}
