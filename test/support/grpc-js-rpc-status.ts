// google.rpc.Status for the grpc-js side of the interop tests, built with
// protobuf-es from a hand-written descriptor (no proto-loader, and independent
// of Connect's private copy) so that grpc-js peers can read and write
// `grpc-status-details-bin` the way any gRPC implementation does.

import {
  create,
  createFileRegistry,
  type DescMessage,
  fromBinary,
  type Message,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import {
  type Any,
  anyPack,
  anyUnpack,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  file_google_protobuf_any,
} from "@bufbuild/protobuf/wkt";
import type * as grpc from "@grpc/grpc-js";

/** RpcStatus is google.rpc.Status: code, message and typed details. */
export type RpcStatus = Message<"google.rpc.Status"> & {
  code: number;
  message: string;
  details: Any[];
};

const statusFile = create(FileDescriptorProtoSchema, {
  name: "google/rpc/status.proto",
  package: "google.rpc",
  dependency: ["google/protobuf/any.proto"],
  syntax: "proto3",
  messageType: [
    {
      name: "Status",
      field: [
        {
          name: "code",
          jsonName: "code",
          number: 1,
          type: FieldDescriptorProto_Type.INT32,
          label: FieldDescriptorProto_Label.OPTIONAL,
        },
        {
          name: "message",
          jsonName: "message",
          number: 2,
          type: FieldDescriptorProto_Type.STRING,
          label: FieldDescriptorProto_Label.OPTIONAL,
        },
        {
          name: "details",
          jsonName: "details",
          number: 3,
          type: FieldDescriptorProto_Type.MESSAGE,
          typeName: ".google.protobuf.Any",
          label: FieldDescriptorProto_Label.REPEATED,
        },
      ],
    },
  ],
});

const registry = createFileRegistry(statusFile, (name) =>
  name === "google/protobuf/any.proto" ? file_google_protobuf_any : undefined,
);

/** RpcStatusSchema describes google.rpc.Status. */
export const RpcStatusSchema = registry.getMessage("google.rpc.Status") as GenMessage<RpcStatus>;

/** STATUS_DETAILS_KEY is the trailer carrying a binary google.rpc.Status. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** DetailInit is one typed detail to pack into a google.rpc.Status. */
export interface DetailInit<Desc extends DescMessage = DescMessage> {
  readonly desc: Desc;
  readonly value: MessageInitShape<Desc>;
}

/** encodeRpcStatus serializes code, message and details as google.rpc.Status. */
export function encodeRpcStatus(
  code: number,
  message: string,
  details: readonly DetailInit[],
): Buffer {
  const status = create(RpcStatusSchema, {
    code,
    message,
    details: details.map((d) => anyPack(d.desc, create(d.desc, d.value))),
  });
  return Buffer.from(toBinary(RpcStatusSchema, status));
}

/** decodeRpcStatus reads the google.rpc.Status from grpc-js trailers, if present. */
export function decodeRpcStatus(trailers: grpc.Metadata | undefined): RpcStatus | undefined {
  const value = trailers?.get(STATUS_DETAILS_KEY)[0];
  if (value === undefined) {
    return undefined;
  }
  if (typeof value === "string") {
    throw new TypeError(`${STATUS_DETAILS_KEY} arrived as a string, want a Buffer`);
  }
  return fromBinary(RpcStatusSchema, value);
}

/** findDetail unpacks the first detail of the given type from a google.rpc.Status. */
export function findDetail<Desc extends DescMessage>(
  status: RpcStatus | undefined,
  desc: Desc,
): MessageShape<Desc> | undefined {
  for (const any of status?.details ?? []) {
    const m = anyUnpack(any, desc);
    if (m !== undefined) {
      return m;
    }
  }
  return undefined;
}
