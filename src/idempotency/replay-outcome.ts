import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type UnaryRequest, type UnaryResponse } from "@connectrpc/connect";
import { ErrorInfoSchema, IDEMPOTENCY_ERROR_DOMAIN } from "./error-info.js";
import { IDEMPOTENCY_REPLAYED_HEADER } from "./idempotency-key.js";
import type { HeaderList, IdempotencyOutcome } from "./outcome.js";
import { responseMetadataFor } from "./protocol-response-headers.js";

/**
 * replayOutcome answers `req` with a stored outcome: the same message bytes,
 * headers and trailers (or the same error code, message, details and
 * metadata), plus the response header `idempotency-replayed: true`. It returns
 * the response, or throws the error.
 * @private
 */
export function replayOutcome(req: UnaryRequest, outcome: IdempotencyOutcome): UnaryResponse {
  switch (outcome.kind) {
    case "ok": {
      const { header, trailer } = responseMetadataFor(req);
      restore(header, outcome.header);
      header.set(IDEMPOTENCY_REPLAYED_HEADER, "true");
      restore(trailer, outcome.trailer);
      return {
        stream: false,
        service: req.service,
        method: req.method,
        header,
        trailer,
        message: fromBinary(req.method.output, outcome.message),
      };
    }
    case "error": {
      const metadata = new Headers();
      for (const [k, v] of outcome.metadata) metadata.append(k, v);
      metadata.set(IDEMPOTENCY_REPLAYED_HEADER, "true");
      const err = new ConnectError(outcome.message, outcome.code, metadata);
      err.details = outcome.details.map((d) => ({ type: d.type, value: d.value }));
      throw err;
    }
    case "unstored":
      throw new ConnectError(
        `the call with this idempotency-key completed, but its response (${outcome.bytes} bytes) was too large to store for replay`,
        Code.FailedPrecondition,
        { [IDEMPOTENCY_REPLAYED_HEADER]: "true" },
        [
          {
            desc: ErrorInfoSchema,
            value: {
              reason: "IDEMPOTENCY_OUTCOME_NOT_STORED",
              domain: IDEMPOTENCY_ERROR_DOMAIN,
              metadata: { bytes: String(outcome.bytes) },
            },
          },
        ],
      );
  }
}

/**
 * restore writes stored headers over `into`: the first value of a name
 * replaces what the context may already hold (the original response had it
 * too), further values (set-cookie) are appended.
 */
function restore(into: Headers, list: HeaderList): void {
  const seen = new Set<string>();
  for (const [k, v] of list) {
    if (seen.has(k)) {
      into.append(k, v);
    } else {
      seen.add(k);
      into.set(k, v);
    }
  }
}
