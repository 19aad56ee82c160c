import { create, createFileRegistry, type Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

// google.rpc.ErrorInfo, built from a hand-written descriptor so the mesh needs
// no generated copy of googleapis. Field numbers and names are those of
// google/rpc/error_details.proto, so grpc-go, grpc-java and grpc-js clients
// decode the detail with their own copy.

/** ErrorInfo is google.rpc.ErrorInfo: why an error happened, machine-readable. */
export type ErrorInfo = Message<"google.rpc.ErrorInfo"> & {
  reason: string;
  domain: string;
  metadata: { [key: string]: string };
};

const STRING = FieldDescriptorProto_Type.STRING;
const OPTIONAL = FieldDescriptorProto_Label.OPTIONAL;

const errorDetailsFile = create(FileDescriptorProtoSchema, {
  name: "google/rpc/error_details.proto",
  package: "google.rpc",
  syntax: "proto3",
  messageType: [
    {
      name: "ErrorInfo",
      field: [
        { name: "reason", jsonName: "reason", number: 1, type: STRING, label: OPTIONAL },
        { name: "domain", jsonName: "domain", number: 2, type: STRING, label: OPTIONAL },
        {
          name: "metadata",
          jsonName: "metadata",
          number: 3,
          type: FieldDescriptorProto_Type.MESSAGE,
          typeName: ".google.rpc.ErrorInfo.MetadataEntry",
          label: FieldDescriptorProto_Label.REPEATED,
        },
      ],
      nestedType: [
        {
          name: "MetadataEntry",
          field: [
            { name: "key", jsonName: "key", number: 1, type: STRING, label: OPTIONAL },
            { name: "value", jsonName: "value", number: 2, type: STRING, label: OPTIONAL },
          ],
          options: { mapEntry: true },
        },
      ],
    },
  ],
});

/** ErrorInfoSchema describes google.rpc.ErrorInfo, for ConnectError details. */
export const ErrorInfoSchema = createFileRegistry(errorDetailsFile, () => undefined).getMessage(
  "google.rpc.ErrorInfo",
) as GenMessage<ErrorInfo>;

/** IDEMPOTENCY_ERROR_DOMAIN is the ErrorInfo domain of the mesh's idempotency errors. */
export const IDEMPOTENCY_ERROR_DOMAIN = "connect-mesh";

/** IdempotencyErrorReason is the ErrorInfo reason of an idempotency error. */
export type IdempotencyErrorReason =
  /** the key was used before for a request with a different payload or method. */
  | "IDEMPOTENCY_KEY_REUSED"
  /** a call with the key is in progress (onConcurrent: "abort"). */
  | "IDEMPOTENCY_KEY_IN_USE"
  /** the first call completed but its outcome was too large to store. */
  | "IDEMPOTENCY_OUTCOME_NOT_STORED";
