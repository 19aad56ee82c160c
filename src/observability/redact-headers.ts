import { createHash } from "node:crypto";
import { IDEMPOTENCY_KEY_HEADER } from "../call/headers.js";

/** REDACTED replaces a secret header value in logs. */
export const REDACTED = "[REDACTED]";

/** DEFAULT_REDACTED_HEADERS are never logged in clear: credentials and cookies. */
export const DEFAULT_REDACTED_HEADERS: readonly string[] = Object.freeze([
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
]);

/**
 * HASHED_HEADERS are logged as a short SHA-256 prefix: an idempotency key is
 * a bearer of a stored outcome, but correlating retries of one key in logs is
 * what makes them debuggable.
 */
export const HASHED_HEADERS: readonly string[] = Object.freeze([IDEMPOTENCY_KEY_HEADER]);

// 12 hex characters (48 bits) correlate keys within any log search window
// without making a short key guessable from its log line.
const HASH_PREFIX_CHARS = 12;

/** hashForLog returns `sha256:` and the first 12 hex characters of the value's SHA-256. */
export function hashForLog(value: string): string {
  return `sha256:${createHash("sha256").update(value).digest("hex").slice(0, HASH_PREFIX_CHARS)}`;
}

/**
 * redactHeaders returns headers as a plain object for logging, with the
 * values of DEFAULT_REDACTED_HEADERS and of `extra` (names, any case) replaced
 * by `[REDACTED]` and `idempotency-key` replaced by its hash prefix.
 */
export function redactHeaders(
  headers: Headers | Readonly<Record<string, string>>,
  extra: readonly string[] = [],
): Record<string, string> {
  const redacted = new Set([...DEFAULT_REDACTED_HEADERS, ...extra.map((h) => h.toLowerCase())]);
  const out: Record<string, string> = {};
  const entries = headers instanceof Headers ? headers.entries() : Object.entries(headers);
  for (const [rawName, value] of entries) {
    const name = rawName.toLowerCase();
    out[name] = redacted.has(name)
      ? REDACTED
      : HASHED_HEADERS.includes(name)
        ? hashForLog(value)
        : value;
  }
  return out;
}

/**
 * createHeaderRedactor validates `extra` once and returns redactHeaders bound
 * to it, for the hot path.
 * @private
 */
export function createHeaderRedactor(
  extra: readonly string[] = [],
): (headers: Headers) => Record<string, string> {
  for (const h of extra) {
    if (typeof h !== "string" || h === "") {
      throw new TypeError(`redactHeaders entry ${JSON.stringify(h)} must be a header name`);
    }
  }
  const lower = extra.map((h) => h.toLowerCase());
  return (headers) => redactHeaders(headers, lower);
}
