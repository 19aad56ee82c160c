import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/**
 * grpcMethodDefinition turns a protobuf-es method descriptor into a grpc-js
 * method definition, with protobuf-es binary serializers (no proto-loader, no
 * second code generator). Serializers accept a message or an init object.
 */
export function grpcMethodDefinition<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { readonly input: I; readonly output: O },
): MethodDefinition<MessageShape<I>, MessageShape<O>> {
  const kind = method.methodKind;
  return {
    path: `/${method.parent.typeName}/${method.name}`,
    requestStream: kind === "client_streaming" || kind === "bidi_streaming",
    responseStream: kind === "server_streaming" || kind === "bidi_streaming",
    requestSerialize: (m) =>
      Buffer.from(toBinary(method.input, create(method.input, m as MessageInitShape<I>))),
    requestDeserialize: (b) => fromBinary(method.input, b),
    responseSerialize: (m) =>
      Buffer.from(toBinary(method.output, create(method.output, m as MessageInitShape<O>))),
    responseDeserialize: (b) => fromBinary(method.output, b),
    originalName: method.localName,
  };
}

/**
 * grpcServiceDefinition is a whole protobuf-es service for grpc-js, keyed by
 * the methods' local (camelCase) names: pass it to
 * `grpc.makeGenericClientConstructor(def, Desc.typeName)` for a grpc-js client
 * of a mesh server, or to `server.addService(def, impl)` for a grpc-js server
 * that mesh clients call.
 */
export function grpcServiceDefinition(service: DescService): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.localName] = grpcMethodDefinition(method) as MethodDefinition<unknown, unknown>;
  }
  return def;
}
