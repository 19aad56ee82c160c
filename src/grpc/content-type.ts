/** CONTENT_TYPE_PROTO is the gRPC content type for protobuf binary messages. */
export const CONTENT_TYPE_PROTO = "application/grpc+proto";
/** CONTENT_TYPE_JSON is the gRPC content type for JSON messages. */
export const CONTENT_TYPE_JSON = "application/grpc+json";

const GRPC_CONTENT_TYPE = /^application\/grpc(?:\+(proto|json))?(?:;.*)?$/i;

/**
 * parseGrpcContentType reads a gRPC content type: "proto" for
 * `application/grpc` and `application/grpc+proto`, "json" for
 * `application/grpc+json`, undefined for anything else (including gRPC-Web).
 */
export function parseGrpcContentType(
  value: string | null | undefined,
): "proto" | "json" | undefined {
  if (value === null || value === undefined) {
    return undefined;
  }
  if (value === CONTENT_TYPE_PROTO || value === "application/grpc") {
    return "proto";
  }
  const m = GRPC_CONTENT_TYPE.exec(value);
  if (m === null) {
    return undefined;
  }
  return m[1]?.toLowerCase() === "json" ? "json" : "proto";
}
