import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";

/** GRPC_STATUS_DETAILS_HEADER is the trailer carrying a binary google.rpc.Status. */
export const GRPC_STATUS_DETAILS_HEADER = "grpc-status-details-bin";

// google.rpc.Status and google.protobuf.Any are tiny and stable, so they are
// written and read by field number here rather than through a registry: it
// avoids depending on Connect's private copy of status_pb.

/** StatusDetail is one google.protobuf.Any of a google.rpc.Status, with its type name. */
export interface StatusDetail {
  /** type is the fully qualified message name (the type URL after its last "/"). */
  readonly type: string;
  readonly value: Uint8Array;
}

/** RpcStatus is a decoded google.rpc.Status. */
export interface RpcStatus {
  readonly code: number;
  readonly message: string;
  readonly details: StatusDetail[];
}

type AnyDetail = ConnectError["details"][number];

function detailBytes(detail: AnyDetail): StatusDetail {
  if ("desc" in detail) {
    const desc = detail.desc as DescMessage;
    return {
      type: desc.typeName,
      value: toBinary(desc, create(desc, detail.value as MessageInitShape<DescMessage>)),
    };
  }
  return { type: detail.type, value: detail.value };
}

/** encodeRpcStatus serializes a google.rpc.Status; details are packed as Any. */
export function encodeRpcStatus(
  code: number,
  message: string,
  details: readonly AnyDetail[],
): Uint8Array {
  const w = new BinaryWriter();
  if (code !== 0) w.tag(1, WireType.Varint).int32(code);
  if (message !== "") w.tag(2, WireType.LengthDelimited).string(message);
  for (const d of details) {
    const { type, value } = detailBytes(d);
    w.tag(3, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).string(`type.googleapis.com/${type}`);
    w.tag(2, WireType.LengthDelimited).bytes(value);
    w.join();
  }
  return w.finish();
}

function decodeAny(bytes: Uint8Array): StatusDetail {
  const r = new BinaryReader(bytes);
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array(0);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.LengthDelimited) typeUrl = r.string();
    else if (field === 2 && wire === WireType.LengthDelimited) value = r.bytes();
    else r.skip(wire, field);
  }
  return { type: typeUrl.substring(typeUrl.lastIndexOf("/") + 1), value };
}

/** decodeRpcStatus parses a google.rpc.Status; it throws on malformed bytes. */
export function decodeRpcStatus(bytes: Uint8Array): RpcStatus {
  const r = new BinaryReader(bytes);
  let code = 0;
  let message = "";
  const details: StatusDetail[] = [];
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === WireType.Varint) code = r.int32();
    else if (field === 2 && wire === WireType.LengthDelimited) message = r.string();
    else if (field === 3 && wire === WireType.LengthDelimited) details.push(decodeAny(r.bytes()));
    else r.skip(wire, field);
  }
  return { code, message, details };
}

/**
 * encodeStatusDetailsBin renders an error as the base64 value of
 * `grpc-status-details-bin` (code, raw message and details), or undefined
 * when the error has no details: then grpc-status and grpc-message suffice.
 */
export function encodeStatusDetailsBin(error: ConnectError): string | undefined {
  if (error.details.length === 0) {
    return undefined;
  }
  const bytes = encodeRpcStatus(error.code, error.rawMessage, error.details);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/**
 * decodeStatusDetailsBin reads a `grpc-status-details-bin` value (base64,
 * padded or not) into an error with the status's code, message and details,
 * or undefined when the status is OK. `metadata` becomes the error's metadata.
 * Malformed bytes throw a ConnectError with Code.Internal.
 */
export function decodeStatusDetailsBin(
  value: string,
  metadata?: HeadersInit,
): ConnectError | undefined {
  let status: RpcStatus;
  try {
    status = decodeRpcStatus(Buffer.from(value, "base64"));
  } catch (e) {
    throw new ConnectError(
      `protocol error: invalid ${GRPC_STATUS_DETAILS_HEADER}: ${String(e)}`,
      Code.Internal,
      metadata,
      undefined,
      e,
    );
  }
  if (status.code === 0) {
    return undefined;
  }
  const error = new ConnectError(status.message, status.code as Code, metadata);
  error.details = status.details;
  return error;
}
