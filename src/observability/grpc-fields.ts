import type { DescMethod } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";

/** CallLogLevel is the pino level a finished call is logged at. */
export type CallLogLevel = "info" | "warn" | "error";

/**
 * CODE_LOG_LEVELS is go-grpc-middleware's default server mapping of codes to
 * levels: what the caller got wrong or gave up on is info, what the service
 * is short of is warn, and what is broken is error.
 */
export const CODE_LOG_LEVELS: Readonly<Record<Code | 0, CallLogLevel>> = Object.freeze({
  0: "info", // OK
  [Code.Canceled]: "info",
  [Code.Unknown]: "error",
  [Code.InvalidArgument]: "info",
  [Code.DeadlineExceeded]: "warn",
  [Code.NotFound]: "info",
  [Code.AlreadyExists]: "info",
  [Code.PermissionDenied]: "warn",
  [Code.ResourceExhausted]: "warn",
  [Code.FailedPrecondition]: "warn",
  [Code.Aborted]: "warn",
  [Code.OutOfRange]: "warn",
  [Code.Unimplemented]: "error",
  [Code.Internal]: "error",
  [Code.Unavailable]: "warn",
  [Code.DataLoss]: "error",
  [Code.Unauthenticated]: "info",
});

/** levelForCode is the level a call ending with `code` (0 for OK) is logged at. */
export function levelForCode(code: Code | 0): CallLogLevel {
  return CODE_LOG_LEVELS[code] ?? "error";
}

/** codeName is the gRPC code's name as grpc-go prints it: `OK`, `NotFound`, `DeadlineExceeded`. */
export function codeName(code: Code | 0): string {
  return code === 0 ? "OK" : (Code[code] ?? `Code(${code})`);
}

/** methodType is grpc-go's name for a method kind: `unary`, `client_stream`, `server_stream`, `bidi_stream`. */
export function methodType(kind: DescMethod["methodKind"]): string {
  switch (kind) {
    case "unary":
      return "unary";
    case "client_streaming":
      return "client_stream";
    case "server_streaming":
      return "server_stream";
    case "bidi_streaming":
      return "bidi_stream";
  }
}
