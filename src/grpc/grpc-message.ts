// The gRPC HTTP/2 spec ("Responses") percent-encodes grpc-message: bytes of
// the UTF-8 encoding outside 0x20-0x7E, and "%" itself, become "%XX"; every
// other byte stays. Connect uses encodeURIComponent instead, which also
// escapes ":" and " " and so reaches grpc-js clients (decodeURI) garbled.

const HEX = "0123456789ABCDEF";
const utf8 = new TextEncoder();
const utf8Lenient = new TextDecoder("utf-8", { fatal: false });

function isPlain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      return false;
    }
  }
  return true;
}

/** encodeGrpcMessage percent-encodes a status message for the `grpc-message` trailer. */
export function encodeGrpcMessage(message: string): string {
  if (isPlain(message)) {
    return message;
  }
  let out = "";
  for (const b of utf8.encode(message)) {
    if (b < 0x20 || b > 0x7e || b === 0x25) {
      out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
    } else {
      out += String.fromCharCode(b);
    }
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * decodeGrpcMessage reverses encodeGrpcMessage. As the spec asks, it never
 * fails: an escape that is not "%" and two hex digits stays as it is, and
 * bytes that are not valid UTF-8 become U+FFFD.
 */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes("%")) {
    return value;
  }
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length) {
      const hi = hexValue(value.charCodeAt(i + 1));
      const lo = hexValue(value.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        bytes.push((hi << 4) | lo);
        i += 2;
        continue;
      }
    }
    if (c < 0x80) {
      bytes.push(c);
    } else {
      // Not expected on the wire, but keep it rather than lose it.
      const cp = value.codePointAt(i) as number;
      for (const b of utf8.encode(String.fromCodePoint(cp))) bytes.push(b);
      if (cp > 0xffff) i++;
    }
  }
  return utf8Lenient.decode(new Uint8Array(bytes));
}
