import { Code } from "@connectrpc/connect";

/** HeaderList is headers as [name, value] pairs, names lower-case, in order. */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

/** StoredDetail is one error detail as it travels: type name and message bytes. */
export interface StoredDetail {
  /** type is the fully-qualified message name, e.g. `google.rpc.ErrorInfo`. */
  readonly type: string;
  readonly value: Uint8Array;
}

/**
 * IdempotencyOutcome is what a keyed call produced, as stored for replay:
 * - `ok`: the response message's bytes and the headers and trailers the
 *   handler set (protocol headers removed);
 * - `error`: a deterministic error's code, message, details and metadata;
 * - `unstored`: the call completed but its outcome of `bytes` was larger than
 *   the interceptor's `maxStoredBytes`; a replay answers FAILED_PRECONDITION
 *   rather than run the handler again.
 */
export type IdempotencyOutcome =
  | {
      readonly kind: "ok";
      readonly message: Uint8Array;
      readonly header: HeaderList;
      readonly trailer: HeaderList;
    }
  | {
      readonly kind: "error";
      readonly code: Code;
      readonly message: string;
      readonly details: readonly StoredDetail[];
      readonly metadata: HeaderList;
    }
  | { readonly kind: "unstored"; readonly bytes: number };

/**
 * outcomeSize approximates the bytes an outcome takes: message bytes, header
 * names and values, error message and details. Stores and the size limit use it.
 */
export function outcomeSize(outcome: IdempotencyOutcome): number {
  const headers = (list: HeaderList) => list.reduce((n, [k, v]) => n + k.length + v.length, 0);
  switch (outcome.kind) {
    case "ok":
      return outcome.message.byteLength + headers(outcome.header) + headers(outcome.trailer);
    case "error":
      return (
        outcome.message.length +
        headers(outcome.metadata) +
        outcome.details.reduce((n, d) => n + d.type.length + d.value.byteLength, 0)
      );
    case "unstored":
      return 0;
  }
}

/**
 * encodeOutcome serializes an outcome as JSON text (bytes in base64), for
 * stores that keep strings (Redis, a Postgres `text` or `jsonb` column...).
 */
export function encodeOutcome(outcome: IdempotencyOutcome): string {
  const b64 = (b: Uint8Array) =>
    Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
  switch (outcome.kind) {
    case "ok":
      return JSON.stringify({
        k: "ok",
        m: b64(outcome.message),
        h: outcome.header,
        t: outcome.trailer,
      });
    case "error":
      return JSON.stringify({
        k: "error",
        c: outcome.code,
        m: outcome.message,
        d: outcome.details.map((d) => [d.type, b64(d.value)]),
        h: outcome.metadata,
      });
    case "unstored":
      return JSON.stringify({ k: "unstored", b: outcome.bytes });
  }
}

/** OutcomeDecodeError says a stored outcome could not be read back. */
export class OutcomeDecodeError extends Error {
  override readonly name = "OutcomeDecodeError";
}

/** decodeOutcome reads what encodeOutcome wrote; it throws OutcomeDecodeError on anything else. */
export function decodeOutcome(text: string): IdempotencyOutcome {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new OutcomeDecodeError("stored outcome is not JSON", { cause: e });
  }
  const o = v as Record<string, unknown> | null;
  const bytes = (s: unknown) => {
    if (typeof s !== "string") throw new OutcomeDecodeError("stored outcome has bad bytes");
    return new Uint8Array(Buffer.from(s, "base64"));
  };
  switch (o?.k) {
    case "ok":
      return { kind: "ok", message: bytes(o.m), header: headerList(o.h), trailer: headerList(o.t) };
    case "error": {
      if (typeof o.c !== "number" || Code[o.c] === undefined || typeof o.m !== "string") {
        throw new OutcomeDecodeError("stored error outcome has a bad code or message");
      }
      if (!Array.isArray(o.d)) throw new OutcomeDecodeError("stored error outcome has bad details");
      const details = o.d.map((d: unknown) => {
        if (!Array.isArray(d) || typeof d[0] !== "string") {
          throw new OutcomeDecodeError("stored error outcome has a bad detail");
        }
        return { type: d[0], value: bytes(d[1]) };
      });
      return { kind: "error", code: o.c, message: o.m, details, metadata: headerList(o.h) };
    }
    case "unstored":
      if (typeof o.b !== "number") throw new OutcomeDecodeError("stored outcome has bad size");
      return { kind: "unstored", bytes: o.b };
    default:
      throw new OutcomeDecodeError("stored outcome has an unknown kind");
  }
}

function headerList(v: unknown): HeaderList {
  if (
    !Array.isArray(v) ||
    !v.every(
      (e: unknown) =>
        Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string",
    )
  ) {
    throw new OutcomeDecodeError("stored outcome has bad headers");
  }
  return v as HeaderList;
}
