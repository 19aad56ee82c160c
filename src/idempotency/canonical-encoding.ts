import { isUtf8 } from "node:buffer";
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";

// protobuf-es's FeatureSet_FieldPresence values.
const IMPLICIT = 2;
const LEGACY_REQUIRED = 3;

// Wire types: varint 0, length-delimited 2.
const VARINT = 0;
const LEN = 2;

type Plan = ReadonlyMap<number, DescField> | null;

// Each message type's fields by number, or null when the type has a field this
// check does not cover (then every message of it is re-encoded).
const plans = new WeakMap<DescMessage, Plan>();

function planOf(schema: DescMessage): Plan {
  let plan = plans.get(schema);
  if (plan === undefined) {
    const byNumber = new Map<number, DescField>();
    let covered = true;
    for (const f of schema.fields) {
      if (
        f.fieldKind !== "scalar" ||
        f.oneof !== undefined ||
        f.presence === LEGACY_REQUIRED ||
        !(
          f.scalar === ScalarType.BYTES ||
          f.scalar === ScalarType.STRING ||
          f.scalar === ScalarType.BOOL ||
          f.scalar === ScalarType.UINT32
        )
      ) {
        covered = false;
        break;
      }
      byNumber.set(f.number, f);
    }
    plan = covered ? byNumber : null;
    plans.set(schema, plan);
  }
  return plan;
}

/**
 * isCanonicalEncoding says whether `bytes` are exactly what protobuf-es's
 * `toBinary` writes for the message `fromBinary(schema, bytes)` reads (default
 * options): then hashing `bytes` gives the same fingerprint as hashing the
 * re-encoded message, without decoding or encoding anything.
 *
 * It is conservative: `true` only for messages whose fields are all singular
 * bytes, string, bool or uint32 fields outside a oneof (no messages, lists,
 * maps, enums, required fields), written once each in field-number order,
 * with minimal varints, valid UTF-8 strings not starting with a byte order
 * mark (TextDecoder drops it), bool as 0 or 1, no zero value
 * for a field without presence, and no unknown field. Anything else answers
 * `false`, and the caller re-encodes: the answer never changes a fingerprint.
 * @private
 */
export function isCanonicalEncoding(schema: DescMessage, bytes: Uint8Array): boolean {
  const plan = planOf(schema);
  if (plan === null) return false;
  let pos = 0;
  let lastNumber = 0;
  const end = bytes.byteLength;
  while (pos < end) {
    // Tag: a minimal varint of at most 5 bytes.
    const tag = readVarint32(bytes, pos);
    if (tag === undefined) return false;
    pos = tag.next;
    const number = tag.value >>> 3;
    const wireType = tag.value & 7;
    if (number <= lastNumber) return false;
    lastNumber = number;
    const field = plan.get(number);
    if (field === undefined) return false;
    const implicit = field.presence === IMPLICIT;
    switch (field.scalar) {
      case ScalarType.BYTES:
      case ScalarType.STRING: {
        if (wireType !== LEN) return false;
        const len = readVarint32(bytes, pos);
        if (len === undefined) return false;
        pos = len.next;
        const stop = pos + len.value;
        if (stop > end) return false;
        if (implicit && len.value === 0) return false;
        if (field.scalar === ScalarType.STRING && !isPlainUtf8(bytes, pos, stop)) return false;
        pos = stop;
        break;
      }
      case ScalarType.BOOL: {
        if (wireType !== VARINT || pos >= end) return false;
        const b = bytes[pos] as number;
        if (b > 1 || (implicit && b === 0)) return false;
        pos += 1;
        break;
      }
      case ScalarType.UINT32: {
        if (wireType !== VARINT) return false;
        const v = readVarint32(bytes, pos);
        if (v === undefined || (implicit && v.value === 0)) return false;
        pos = v.next;
        break;
      }
      default:
        return false;
    }
  }
  return true;
}

// readVarint32 reads a minimally encoded varint of a value < 2^32 (at most 5
// bytes, no trailing zero byte), or answers undefined.
function readVarint32(
  bytes: Uint8Array,
  start: number,
): { readonly value: number; readonly next: number } | undefined {
  let value = 0;
  let shift = 0;
  for (let pos = start; pos < bytes.byteLength && pos - start < 5; pos++) {
    const b = bytes[pos] as number;
    if (pos - start === 4 && b > 0x0f) return undefined;
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) {
      // A last byte of 0 after others is a non-minimal encoding.
      if (b === 0 && pos > start) return undefined;
      return { value, next: pos + 1 };
    }
  }
  return undefined;
}

// isPlainUtf8 says whether bytes[start, stop) is valid UTF-8 that TextDecoder
// gives back unchanged: it drops a leading byte order mark (EF BB BF).
function isPlainUtf8(bytes: Uint8Array, start: number, stop: number): boolean {
  if (
    stop - start >= 3 &&
    bytes[start] === 0xef &&
    bytes[start + 1] === 0xbb &&
    bytes[start + 2] === 0xbf
  ) {
    return false;
  }
  return isUtf8(bytes.subarray(start, stop));
}
