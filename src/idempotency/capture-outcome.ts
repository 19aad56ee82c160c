import { create, isMessage, toBinary } from "@bufbuild/protobuf";
import type { ConnectError, UnaryResponse } from "@connectrpc/connect";
import { holdsOnlyProtocolHeaders } from "../call/response-headers.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "./idempotency-key.js";
import type { HeaderList, IdempotencyOutcome } from "./outcome.js";

// Headers the protocol writes (Connect's protocolHeaders, plus HTTP/2 and
// transfer headers); the rest are the handler's and are replayed.
const PROTOCOL_HEADERS = new Set([
  "content-type",
  "content-length",
  "content-encoding",
  "accept-encoding",
  "host",
  "user-agent",
  "trailer",
  "te",
  "date",
  IDEMPOTENCY_REPLAYED_HEADER,
]);

/** isProtocolHeader says whether a header belongs to the protocol rather than the handler. @private */
export function isProtocolHeader(name: string): boolean {
  const n = name.toLowerCase();
  return (
    PROTOCOL_HEADERS.has(n) ||
    n.startsWith(":") ||
    n.startsWith("grpc-") ||
    n.startsWith("connect-")
  );
}

// Most handlers set no headers: their outcomes share one empty list, since
// stored outcomes live long enough to cost the GC per object.
const NO_HEADERS: HeaderList = Object.freeze([]);

function handlerHeaders(headers: Headers): HeaderList {
  // The lean gRPC handler's headers know whether anyone wrote to them.
  if (holdsOnlyProtocolHeaders(headers)) return NO_HEADERS;
  let out: [string, string][] | undefined;
  headers.forEach((value, name) => {
    if (isProtocolHeader(name)) return;
    out ??= [];
    out.push([name, value]);
  });
  return out ?? NO_HEADERS;
}

/**
 * captureResponse turns a unary response into an `ok` outcome: the message's
 * binary encoding, and the headers and trailers without protocol headers.
 * @private
 */
export function captureResponse(res: UnaryResponse): IdempotencyOutcome {
  const out = res.method.output;
  const msg = isMessage(res.message, out) ? res.message : create(out, res.message);
  return {
    kind: "ok",
    message: toBinary(out, msg),
    header: handlerHeaders(res.header),
    trailer: handlerHeaders(res.trailer),
  };
}

/**
 * captureError turns an error into an `error` outcome: code, raw message,
 * details (encoded) and metadata without protocol headers. Headers a handler
 * set on `ctx.responseHeader` before throwing are not visible to interceptors,
 * so only the error's own metadata is kept.
 * @private
 */
export function captureError(err: ConnectError): IdempotencyOutcome {
  return {
    kind: "error",
    code: err.code,
    message: err.rawMessage,
    details: err.details.map((d) =>
      "desc" in d
        ? { type: d.desc.typeName, value: toBinary(d.desc, create(d.desc, d.value)) }
        : { type: d.type, value: d.value },
    ),
    metadata: handlerHeaders(err.metadata),
  };
}
