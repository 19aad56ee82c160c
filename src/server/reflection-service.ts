import {
  type DescEnum,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ServiceImpl } from "@connectrpc/connect";
import { ServerReflection as ServerReflectionV1 } from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

export { ServerReflectionV1, ServerReflectionV1alpha };

/**
 * DescriptorIndex answers reflection lookups over the descriptors of a set of
 * services and every file they import, transitively.
 */
export interface DescriptorIndex {
  /** services are the fully-qualified names of the served services, sorted. */
  readonly services: readonly string[];
  /** fileByName finds a file by its path (`example/orders/v1/orders.proto`). */
  fileByName(name: string): DescFile | undefined;
  /** fileBySymbol finds the file declaring a message, enum, service, method or extension. */
  fileBySymbol(symbol: string): DescFile | undefined;
  /** extensionsOf lists the known extensions of a message; undefined for an unknown message. */
  extensionsOf(typeName: string): readonly DescExtension[] | undefined;
}

/**
 * createDescriptorIndex indexes the files of the given services and their
 * transitive imports by path and by symbol.
 */
export function createDescriptorIndex(services: readonly DescService[]): DescriptorIndex {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const messages = new Set<string>();
  const extensions = new Map<string, DescExtension[]>();
  const addEnum = (file: DescFile, e: DescEnum) => symbols.set(e.typeName, file);
  const addExtension = (file: DescFile, x: DescExtension) => {
    symbols.set(x.typeName, file);
    const list = extensions.get(x.extendee.typeName) ?? [];
    list.push(x);
    extensions.set(x.extendee.typeName, list);
  };
  const addMessage = (file: DescFile, m: DescMessage) => {
    symbols.set(m.typeName, file);
    messages.add(m.typeName);
    for (const n of m.nestedMessages) addMessage(file, n);
    for (const e of m.nestedEnums) addEnum(file, e);
    for (const x of m.nestedExtensions) addExtension(file, x);
  };
  const addFile = (file: DescFile) => {
    if (files.has(fileName(file))) return;
    files.set(fileName(file), file);
    for (const m of file.messages) addMessage(file, m);
    for (const e of file.enums) addEnum(file, e);
    for (const x of file.extensions) addExtension(file, x);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
    for (const d of file.dependencies) addFile(d);
  };
  for (const s of services) addFile(s.file);
  const names = [...new Set(services.map((s) => s.typeName))].sort();
  return {
    services: names,
    fileByName: (name) => files.get(name),
    fileBySymbol: (symbol) => symbols.get(symbol.startsWith(".") ? symbol.slice(1) : symbol),
    extensionsOf: (typeName) =>
      messages.has(typeName) ? (extensions.get(typeName) ?? []) : undefined,
  };
}

// DescFile.name drops the `.proto` suffix; reflection speaks in file paths.
function fileName(file: DescFile): string {
  return file.proto.name;
}

/** ReflectionRequest is a reflection request of either version (v1 and v1alpha share the shape). */
export interface ReflectionRequest {
  readonly host: string;
  readonly messageRequest:
    | { readonly case: "fileByFilename"; readonly value: string }
    | { readonly case: "fileContainingSymbol"; readonly value: string }
    | {
        readonly case: "fileContainingExtension";
        readonly value: { readonly containingType: string; readonly extensionNumber: number };
      }
    | { readonly case: "allExtensionNumbersOfType"; readonly value: string }
    | { readonly case: "listServices"; readonly value: string }
    | { readonly case: undefined; readonly value?: undefined };
}

/** ReflectionAnswer is the `message_response` of a reflection response. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | {
      case: "allExtensionNumbersResponse";
      value: { baseTypeName: string; extensionNumber: number[] };
    }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

/**
 * answerReflection is the decision behind the reflection service: it maps one
 * request to its response over the index. A file answer holds the file and
 * all it imports, transitively, so one round trip gives a client the whole
 * schema it needs (grpc-go sends the same set, minus files sent earlier on the
 * stream; clients dedupe).
 */
export function answerReflection(index: DescriptorIndex, req: ReflectionRequest): ReflectionAnswer {
  const r = req.messageRequest;
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename": {
      const file = index.fileByName(r.value);
      return file === undefined
        ? notFound(`file ${JSON.stringify(r.value)} not found`)
        : filesAnswer(file);
    }
    case "fileContainingSymbol": {
      const file = index.fileBySymbol(r.value);
      return file === undefined
        ? notFound(`symbol ${JSON.stringify(r.value)} not found`)
        : filesAnswer(file);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = r.value;
      const x = index.extensionsOf(containingType)?.find((e) => e.number === extensionNumber);
      return x === undefined
        ? notFound(`extension ${extensionNumber} of ${JSON.stringify(containingType)} not found`)
        : filesAnswer(x.file);
    }
    case "allExtensionNumbersOfType": {
      const list = index.extensionsOf(r.value);
      return list === undefined
        ? notFound(`type ${JSON.stringify(r.value)} not found`)
        : {
            case: "allExtensionNumbersResponse",
            value: { baseTypeName: r.value, extensionNumber: list.map((e) => e.number) },
          };
    }
    default:
      return {
        case: "errorResponse",
        value: {
          errorCode: Code.InvalidArgument,
          errorMessage: "reflection request names no lookup",
        },
      };
  }
}

function notFound(errorMessage: string): ReflectionAnswer {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

function filesAnswer(file: DescFile): ReflectionAnswer {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(fileName(f))) return;
    seen.add(fileName(f));
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const d of f.dependencies) visit(d);
  };
  visit(file);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
}

// The echoed request must not carry the other version's $typeName.
function plainRequest(req: ReflectionRequest): ReflectionRequest {
  const r = req.messageRequest;
  return {
    host: req.host,
    messageRequest:
      r.case === "fileContainingExtension"
        ? {
            case: r.case,
            value: {
              containingType: r.value.containingType,
              extensionNumber: r.value.extensionNumber,
            },
          }
        : r,
  };
}

/**
 * createReflectionServices implements gRPC server reflection
 * (`grpc.reflection.v1.ServerReflection` and its older twin `v1alpha`, which
 * grpcurl and `buf curl` still try) over the given services' descriptors. The
 * services should include the reflection services themselves, as grpc-go's do.
 */
export function createReflectionServices(services: readonly DescService[]): {
  readonly v1: ServiceImpl<typeof ServerReflectionV1>;
  readonly v1alpha: ServiceImpl<typeof ServerReflectionV1alpha>;
} {
  // Built on first use: most servers are never asked.
  let index: DescriptorIndex | undefined;
  async function* info(requests: AsyncIterable<ReflectionRequest>) {
    for await (const req of requests) {
      index ??= createDescriptorIndex(services);
      yield {
        validHost: req.host,
        originalRequest: plainRequest(req),
        messageResponse: answerReflection(index, req),
      };
    }
  }
  return {
    v1: { serverReflectionInfo: info },
    v1alpha: { serverReflectionInfo: info },
  };
}
