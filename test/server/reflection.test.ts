// gRPC server reflection: the pure lookup table-tested over hand-built
// descriptors, then the served service through `buf curl` with no schema and
// through a grpc-js reflection client (v1 and v1alpha).

import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { create, createFileRegistry, type DescService, fromBinary } from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createOrderService, OrderService } from "../../examples/order-service.js";
import {
  type ServerReflectionResponse,
  ServerReflection as ServerReflectionV1,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { createMeshServer, grpcServiceDefinition, type MeshServer } from "../../src/index.js";
import {
  answerReflection,
  createDescriptorIndex,
  type ReflectionRequest,
} from "../../src/server/reflection-service.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "node_modules", ".bin");

// Two files: ext.proto imports base.proto, extends its message and serves a service.
function fixtureServices(): { service: DescService } {
  const base = create(FileDescriptorProtoSchema, {
    name: "t/base.proto",
    package: "t",
    syntax: "proto2",
    messageType: [
      {
        name: "Base",
        extensionRange: [{ start: 100, end: 200 }],
        nestedType: [{ name: "Inner" }],
        enumType: [{ name: "Kind", value: [{ name: "KIND_UNSPECIFIED", number: 0 }] }],
      },
    ],
  });
  const ext = create(FileDescriptorProtoSchema, {
    name: "t/ext.proto",
    package: "t",
    syntax: "proto2",
    dependency: ["t/base.proto"],
    extension: [
      {
        name: "tag",
        number: 101,
        label: FieldDescriptorProto_Label.OPTIONAL,
        type: FieldDescriptorProto_Type.STRING,
        extendee: ".t.Base",
      },
    ],
    service: [{ name: "S", method: [{ name: "M", inputType: ".t.Base", outputType: ".t.Base" }] }],
  });
  const files = new Map([
    ["t/base.proto", base],
    ["t/ext.proto", ext],
  ]);
  const registry = createFileRegistry(ext, (name) => files.get(name));
  const service = registry.getService("t.S");
  if (service === undefined) throw new Error("fixture has no t.S");
  return { service };
}

function req(messageRequest: ReflectionRequest["messageRequest"]): ReflectionRequest {
  return { host: "", messageRequest };
}

function fileNames(answer: ReturnType<typeof answerReflection>): string[] {
  if (answer.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${answer.case}: ${JSON.stringify(answer.value)}`);
  }
  return answer.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

describe("answerReflection", () => {
  const { service } = fixtureServices();
  const index = createDescriptorIndex([service]);

  it.each([
    ["a service", "t.S"],
    ["a method", "t.S.M"],
    ["an extension", "t.tag"],
    ["a leading-dot name", ".t.S"],
  ])("finds the file of %s with its imports", (_, symbol) => {
    expect(
      fileNames(answerReflection(index, req({ case: "fileContainingSymbol", value: symbol }))),
    ).toEqual(["t/ext.proto", "t/base.proto"]);
  });

  it.each([
    ["a message", "t.Base"],
    ["a nested message", "t.Base.Inner"],
    ["a nested enum", "t.Base.Kind"],
  ])("finds the imported file declaring %s", (_, symbol) => {
    expect(
      fileNames(answerReflection(index, req({ case: "fileContainingSymbol", value: symbol }))),
    ).toEqual(["t/base.proto"]);
  });

  it("finds files by path, and an extension by type and number", () => {
    expect(
      fileNames(answerReflection(index, req({ case: "fileByFilename", value: "t/base.proto" }))),
    ).toEqual(["t/base.proto"]);
    const byExt = answerReflection(
      index,
      req({
        case: "fileContainingExtension",
        value: { containingType: "t.Base", extensionNumber: 101 },
      }),
    );
    expect(fileNames(byExt)).toEqual(["t/ext.proto", "t/base.proto"]);
  });

  it("lists services and the extension numbers of a type", () => {
    expect(answerReflection(index, req({ case: "listServices", value: "*" }))).toEqual({
      case: "listServicesResponse",
      value: { service: [{ name: "t.S" }] },
    });
    expect(
      answerReflection(index, req({ case: "allExtensionNumbersOfType", value: "t.Base" })),
    ).toEqual({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "t.Base", extensionNumber: [101] },
    });
    expect(
      answerReflection(index, req({ case: "allExtensionNumbersOfType", value: "t.Base.Inner" })),
    ).toEqual({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "t.Base.Inner", extensionNumber: [] },
    });
  });

  it.each<[string, ReflectionRequest["messageRequest"], RegExp]>([
    [
      "an unknown file",
      { case: "fileByFilename", value: "nope.proto" },
      /file "nope\.proto" not found/,
    ],
    [
      "an unknown symbol",
      { case: "fileContainingSymbol", value: "t.Nope" },
      /symbol "t\.Nope" not found/,
    ],
    [
      "an unknown extension",
      { case: "fileContainingExtension", value: { containingType: "t.Base", extensionNumber: 7 } },
      /extension 7 of "t\.Base" not found/,
    ],
    [
      "an unknown type",
      { case: "allExtensionNumbersOfType", value: "t.Nope" },
      /type "t\.Nope" not found/,
    ],
  ])("answers NOT_FOUND for %s, quoting it", (_, messageRequest, message) => {
    const answer = answerReflection(index, req(messageRequest));
    expect(answer.case).toBe("errorResponse");
    expect(answer.value).toMatchObject({
      errorCode: Code.NotFound,
      errorMessage: expect.stringMatching(message),
    });
  });

  it("answers INVALID_ARGUMENT for a request naming no lookup", () => {
    expect(answerReflection(index, req({ case: undefined }))).toMatchObject({
      case: "errorResponse",
      value: { errorCode: Code.InvalidArgument },
    });
  });
});

interface CurlResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** bufCurl runs `buf curl` with NO --schema, outside the repo, so only reflection can help. */
function bufCurl(args: readonly string[]): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile(
      "buf",
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args],
      {
        cwd: tmpdir(),
        env: { ...process.env, PATH: `${BIN}${path.delimiter}${process.env.PATH ?? ""}` },
        timeout: 15_000,
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== "number") {
          reject(error);
          return;
        }
        resolve({ exitCode: error === null ? 0 : (error.code as number), stdout, stderr });
      },
    );
  });
}

type ReflectionClient = grpc.Client & {
  serverReflectionInfo(): grpc.ClientDuplexStream<unknown, ServerReflectionResponse>;
};

/** ask sends reflection requests on one grpc-js stream and collects the answers. */
function ask(
  client: ReflectionClient,
  requests: readonly Record<string, unknown>[],
): Promise<ServerReflectionResponse[]> {
  return new Promise((resolve, reject) => {
    const out: ServerReflectionResponse[] = [];
    const call = client.serverReflectionInfo();
    call.on("data", (m: ServerReflectionResponse) => out.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(out));
    for (const r of requests) call.write(r);
    call.end();
  });
}

function filesOf(res: ServerReflectionResponse | undefined): string[] {
  const r = res?.messageResponse;
  if (r?.case !== "fileDescriptorResponse") {
    throw new Error(`expected files, got ${JSON.stringify(r)}`);
  }
  return r.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

describe("reflection served by the mesh server", () => {
  let server: MeshServer;
  let bare: MeshServer;
  let address: string;
  let bareAddress: string;

  beforeAll(async () => {
    const routes = (router: Parameters<Parameters<typeof createMeshServer>[0]["routes"]>[0]) =>
      router.service(OrderService, createOrderService("reflection-test"));
    server = createMeshServer({ routes });
    bare = createMeshServer({ routes, reflection: false });
    ({ address } = await server.listen({ port: 0 }));
    ({ address: bareAddress } = await bare.listen({ port: 0 }));
  });

  afterAll(async () => {
    await Promise.all([server?.close({ graceMs: 0 }), bare?.close({ graceMs: 0 })]);
  });

  it("lets buf curl call GetOrder with no --schema", async () => {
    const created = await bufCurl([
      "--data",
      JSON.stringify({
        customerId: "c-1",
        items: [{ sku: "book", quantity: 2, unitPriceCents: "1250" }],
      }),
      `http://${address}/example.orders.v1.OrderService/CreateOrder`,
    ]);
    expect(created.stderr).toBe("");
    expect(created.exitCode).toBe(0);
    const id = (JSON.parse(created.stdout) as { order: { id: string } }).order.id;

    const got = await bufCurl([
      "--data",
      JSON.stringify({ id }),
      `http://${address}/example.orders.v1.OrderService/GetOrder`,
    ]);
    expect(got.exitCode).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({
      order: { id, customerId: "c-1", totalCents: "2500", servedBy: "reflection-test" },
    });
  });

  it("lets buf curl list the services", async () => {
    const listed = await bufCurl(["--list-services", `http://${address}`]);
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout.trim().split("\n").sort()).toEqual([
      "example.orders.v1.OrderService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  it("is off with reflection: false, and buf curl then needs a schema", async () => {
    const res = await bufCurl([
      "--data",
      "{}",
      `http://${bareAddress}/example.orders.v1.OrderService/GetOrder`,
    ]);
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toMatch(/failed to find service named "example\.orders\.v1\.OrderService"/);
  });

  it.each([
    ["v1", ServerReflectionV1],
    ["v1alpha", ServerReflectionV1alpha],
  ])("answers a grpc-js reflection client (%s)", async (_, desc) => {
    const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(desc), desc.typeName);
    const client = new Client(
      address,
      grpc.credentials.createInsecure(),
    ) as unknown as ReflectionClient;
    try {
      const answers = await ask(client, [
        { host: "h", messageRequest: { case: "listServices", value: "" } },
        {
          messageRequest: {
            case: "fileContainingSymbol",
            value: "example.orders.v1.OrderService.GetOrder",
          },
        },
        { messageRequest: { case: "fileByFilename", value: "grpc/health/v1/health.proto" } },
        { messageRequest: { case: "fileContainingSymbol", value: "no.Such" } },
        {
          messageRequest: {
            case: "fileContainingExtension",
            value: { containingType: "example.orders.v1.Order", extensionNumber: 1000 },
          },
        },
        { messageRequest: { case: "allExtensionNumbersOfType", value: "example.orders.v1.Order" } },
      ]);
      expect(answers).toHaveLength(6);
      expect(answers[0]?.validHost).toBe("h");
      expect(answers[0]?.originalRequest?.messageRequest.case).toBe("listServices");
      const list = answers[0]?.messageResponse;
      expect(
        list?.case === "listServicesResponse" && list.value.service.map((s) => s.name),
      ).toContain("example.orders.v1.OrderService");
      expect(filesOf(answers[1])).toEqual(["example/orders/v1/orders.proto"]);
      const bytes = answers[1]?.messageResponse.value as { fileDescriptorProto: Uint8Array[] };
      const file = fromBinary(FileDescriptorProtoSchema, bytes.fileDescriptorProto[0]!);
      expect(file.service.map((s) => s.name)).toEqual(["OrderService"]);
      expect(filesOf(answers[2])).toEqual(["grpc/health/v1/health.proto"]);
      for (const i of [3, 4]) {
        expect(answers[i]?.messageResponse).toMatchObject({
          case: "errorResponse",
          value: { errorCode: Code.NotFound },
        });
      }
      expect(answers[5]?.messageResponse).toMatchObject({
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: "example.orders.v1.Order", extensionNumber: [] },
      });
    } finally {
      client.close();
    }
  });

  it("rejects a non-boolean reflection option", () => {
    expect(() =>
      createMeshServer({ routes: () => {}, reflection: "yes" as unknown as boolean }),
    ).toThrow(/reflection "yes" must be a boolean/);
  });
});
