import * as zlib from "node:zlib";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { compressionGzip, gunzipBounded, gzip } from "../../src/grpc/compression.js";
import { parseGrpcContentType } from "../../src/grpc/content-type.js";
import { createFrameDecoder, encodeFrame } from "../../src/grpc/frame.js";
import { decodeGrpcMessage, encodeGrpcMessage } from "../../src/grpc/grpc-message.js";
import { codeFromHttpStatus } from "../../src/grpc/grpc-status.js";
import { headersFromNode, headersToNode } from "../../src/grpc/metadata.js";
import {
  decodeRpcStatus,
  decodeStatusDetailsBin,
  encodeRpcStatus,
  encodeStatusDetailsBin,
} from "../../src/grpc/status-details.js";

function codeOf(fn: () => unknown): Code | undefined {
  try {
    fn();
  } catch (e) {
    return ConnectError.from(e).code;
  }
  return undefined;
}

describe("grpc-message percent-encoding (gRPC HTTP/2 spec)", () => {
  it.each([
    ["plain ascii", "boom", "boom"],
    ["colon and space stay", "boom: x", "boom: x"],
    ["percent is escaped", "100%", "100%25"],
    ["control bytes", "a\nb\tc", "a%0Ab%09c"],
    ["non-ASCII as UTF-8 bytes", "ünïcode", "%C3%BCn%C3%AFcode"],
    ["emoji (4 UTF-8 bytes)", "ok 🎉", "ok %F0%9F%8E%89"],
    ["tilde (0x7E) stays, DEL (0x7F) escaped", "~\u007f", "~%7F"],
    ["empty", "", ""],
  ])("%s", (_name, raw, wire) => {
    expect(encodeGrpcMessage(raw)).toBe(wire);
    expect(decodeGrpcMessage(wire)).toBe(raw);
  });

  it.each([
    ["truncated escape", "50%", "50%"],
    ["truncated escape, one digit", "50%2", "50%2"],
    ["non-hex escape", "a%zzb", "a%zzb"],
    ["lower-case hex", "%c3%bc", "ü"],
    ["invalid UTF-8 becomes U+FFFD", "%FF", "\uFFFD"],
    ["encodeURIComponent output decodes too", "boom%3A%20x", "boom: x"],
  ])("decodes tolerantly: %s", (_name, wire, raw) => {
    expect(decodeGrpcMessage(wire)).toBe(raw);
  });
});

describe("frame codec", () => {
  it("round-trips frames split at every byte boundary", () => {
    const a = encodeFrame(new Uint8Array([1, 2, 3]), false);
    const b = encodeFrame(new Uint8Array(0), true);
    const c = encodeFrame(new Uint8Array(300).fill(7), false);
    const all = new Uint8Array([...a, ...b, ...c]);
    for (let split = 0; split <= all.length; split++) {
      const d = createFrameDecoder({ readMaxBytes: 1000 });
      const frames = [...d.push(all.subarray(0, split)), ...d.push(all.subarray(split))];
      d.end();
      expect(frames.map((f) => [f.compressed, f.data.length])).toEqual([
        [false, 3],
        [true, 0],
        [false, 300],
      ]);
      expect([...(frames[0]?.data ?? [])]).toEqual([1, 2, 3]);
      expect(frames[2]?.data.every((x) => x === 7)).toBe(true);
    }
  });

  it("byte by byte", () => {
    const all = encodeFrame(new Uint8Array([9, 8, 7, 6, 5, 4]), true);
    const d = createFrameDecoder({ readMaxBytes: 10 });
    const frames = [];
    for (const byte of all) frames.push(...d.push(new Uint8Array([byte])));
    expect(frames).toHaveLength(1);
    expect([...(frames[0]?.data ?? [])]).toEqual([9, 8, 7, 6, 5, 4]);
    expect(frames[0]?.compressed).toBe(true);
  });

  it("rejects a length prefix over readMaxBytes before buffering, naming both sizes", () => {
    const d = createFrameDecoder({ readMaxBytes: 1024 });
    const prefix = new Uint8Array([0, 0, 0x10, 0, 0]); // 1 MiB, no body yet
    let error: ConnectError | undefined;
    try {
      d.push(prefix);
    } catch (e) {
      error = ConnectError.from(e);
    }
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.rawMessage).toContain("1048576");
    expect(error?.rawMessage).toContain("1024");
    expect(d.pending).toBe(0);
  });

  it("accepts a message of exactly readMaxBytes", () => {
    const d = createFrameDecoder({ readMaxBytes: 4 });
    expect(d.push(encodeFrame(new Uint8Array(4), false))).toHaveLength(1);
  });

  it.each([
    ["partial prefix", new Uint8Array([0, 0, 0])],
    ["partial body", new Uint8Array([0, 0, 0, 0, 4, 1, 2])],
  ])("end() throws INTERNAL on a truncated frame: %s", (_n, bytes) => {
    const d = createFrameDecoder({ readMaxBytes: 100 });
    d.push(bytes);
    expect(codeOf(() => d.end())).toBe(Code.Internal);
  });
});

describe("google.rpc.Status in grpc-status-details-bin", () => {
  it("round-trips code, message and typed details", () => {
    const err = new ConnectError("bad: ü", Code.FailedPrecondition, undefined, [
      { desc: StringValueSchema, value: { value: "why" } },
    ]);
    const bin = encodeStatusDetailsBin(err);
    expect(bin).toBeDefined();
    const back = decodeStatusDetailsBin(bin as string, { "x-a": "1" });
    expect(back?.code).toBe(Code.FailedPrecondition);
    expect(back?.rawMessage).toBe("bad: ü");
    expect(back?.findDetails(StringValueSchema)).toEqual([
      expect.objectContaining({ value: "why" }),
    ]);
    expect(back?.metadata.get("x-a")).toBe("1");
  });

  it("encodes nothing without details, and OK decodes to no error", () => {
    expect(encodeStatusDetailsBin(new ConnectError("x", Code.NotFound))).toBeUndefined();
    const ok = Buffer.from(encodeRpcStatus(0, "", [])).toString("base64");
    expect(decodeStatusDetailsBin(ok)).toBeUndefined();
  });

  it("keeps incoming details as bytes and skips unknown fields", () => {
    const bytes = encodeRpcStatus(5, "m", [{ type: "x.Y", value: new Uint8Array([1, 2]) }]);
    const withUnknown = new Uint8Array([...bytes, 0x20, 0x01]); // field 4 varint 1
    expect(decodeRpcStatus(withUnknown)).toEqual({
      code: 5,
      message: "m",
      details: [{ type: "x.Y", value: new Uint8Array([1, 2]) }],
    });
  });

  it("malformed bytes are INTERNAL", () => {
    expect(
      codeOf(() => decodeStatusDetailsBin(Buffer.from([0x0a, 0x05, 1]).toString("base64"))),
    ).toBe(Code.Internal);
  });
});

describe("bounded gzip", () => {
  it("round-trips", async () => {
    const data = new Uint8Array(10_000).fill(3);
    const z = await gzip(data);
    expect(z.byteLength).toBeLessThan(data.byteLength);
    expect(await gunzipBounded(z, 10_000)).toEqual(data);
    expect(await compressionGzip.decompress(z, 10_000)).toEqual(data);
  });

  it("stops a bomb at the limit with RESOURCE_EXHAUSTED", async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024));
    expect(bomb.byteLength).toBeLessThan(64 * 1024);
    const e = await gunzipBounded(bomb, 4 * 1024 * 1024).catch((x: unknown) => x);
    expect(ConnectError.from(e).code).toBe(Code.ResourceExhausted);
    expect(ConnectError.from(e).rawMessage).toContain("4194304");
  });

  it("corrupt input is INTERNAL", async () => {
    const e = await gunzipBounded(new Uint8Array([0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5]), 100).catch(
      (x: unknown) => x,
    );
    expect(ConnectError.from(e).code).toBe(Code.Internal);
  });
});

describe("metadata conversion", () => {
  it("skips pseudo headers and appends repeated values", () => {
    const h = headersFromNode({ ":status": 200, "x-a": ["1", "2"], "x-b": "3" } as never);
    expect([...h]).toEqual([
      ["x-a", "1, 2"],
      ["x-b", "3"],
    ]);
  });

  it("writes user metadata, not reserved or connection headers", () => {
    const out = headersToNode(
      new Headers({ "x-a": "1", "grpc-status": "0", connection: "close", "k-bin": "AAE=" }),
      {},
    );
    expect(out).toEqual({ "x-a": "1", "k-bin": "AAE=" });
  });
});

describe("status and content type tables", () => {
  it.each([
    [400, Code.Internal],
    [401, Code.Unauthenticated],
    [403, Code.PermissionDenied],
    [404, Code.Unimplemented],
    [429, Code.Unavailable],
    [502, Code.Unavailable],
    [503, Code.Unavailable],
    [504, Code.Unavailable],
    [200, Code.Unknown],
    [500, Code.Unknown],
  ])("HTTP %i is %s", (status, code) => {
    expect(codeFromHttpStatus(status)).toBe(code);
  });

  it.each([
    ["application/grpc", "proto"],
    ["application/grpc+proto", "proto"],
    ["application/grpc+json", "json"],
    ["application/grpc+json; charset=utf-8", "json"],
    ["application/grpc-web+proto", undefined],
    ["text/html", undefined],
    [null, undefined],
  ])("content type %s", (value, want) => {
    expect(parseGrpcContentType(value)).toBe(want);
  });
});
