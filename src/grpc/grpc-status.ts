import { Code } from "@connectrpc/connect";

/**
 * codeFromHttpStatus maps the HTTP status of a response that carries no
 * grpc-status to a gRPC code, per gRPC's http-grpc-status-mapping.md (as
 * connect-es protocol-grpc/http-status.ts does).
 */
export function codeFromHttpStatus(httpStatus: number): Code {
  switch (httpStatus) {
    case 400:
      return Code.Internal;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 404:
      return Code.Unimplemented;
    case 429:
    case 502:
    case 503:
    case 504:
      return Code.Unavailable;
    default:
      // 200 without grpc-status is a broken response: UNKNOWN.
      return Code.Unknown;
  }
}

/** GRPC_STATUS_OK is the grpc-status value of a successful call. */
export const GRPC_STATUS_OK = "0";

/** isValidCode says whether a grpc-status number is one of the 17 gRPC codes. */
export function isValidCode(code: number): code is Code {
  return Number.isInteger(code) && code >= 0 && code <= 16;
}
