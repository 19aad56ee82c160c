import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CreateOrderRequestSchema, OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { EchoRequestSchema, EchoService } from "../../gen/test/v1/echo_pb.js";
import { isCanonicalEncoding } from "../../src/idempotency/canonical-encoding.js";
import { requestFingerprint } from "../../src/idempotency/fingerprint.js";

const echo = EchoService.method.echo;

// What the check must agree with: protobuf-es re-encodes the bytes unchanged.
function reencodesUnchanged(bytes: Uint8Array): boolean | undefined {
  let again: Uint8Array;
  try {
    again = toBinary(EchoRequestSchema, fromBinary(EchoRequestSchema, bytes));
  } catch {
    return undefined;
  }
  return Buffer.from(again).equals(Buffer.from(bytes));
}

const hex = (s: string) => new Uint8Array(Buffer.from(s.replace(/ /g, ""), "hex"));

describe("isCanonicalEncoding", () => {
  it.each([
    ["empty message", "", true],
    ["payload", "0a 03 616263", true],
    ["all fields in order", "0a 01 61 10 96 01 18 01 20 05 2a 02 6869", true],
    ["5-byte uint32", "10 80 80 80 80 0f", true],
    ["fields out of order", "10 01 0a 01 61", false],
    ["field repeated", "0a 01 61 0a 01 62", false],
    ["empty payload (zero value)", "0a 00", false],
    ["uint32 zero", "10 00", false],
    ["bool false", "18 00", false],
    ["bool 2", "18 02", false],
    ["non-minimal varint", "10 81 00", false],
    ["non-minimal length", "0a 81 00 61", false],
    ["uint32 over 32 bits", "10 80 80 80 80 10", false],
    ["unknown field", "0a 01 61 30 01", false],
    ["wrong wire type", "0d 01 00 00 00", false],
    ["invalid utf-8", "2a 01 ff", false],
    ["byte order mark", "2a 04 efbbbf 61", false],
    ["truncated", "0a 05 61", false],
  ])("%s", (_name, input, canonical) => {
    const bytes = hex(input);
    expect(isCanonicalEncoding(EchoRequestSchema, bytes)).toBe(canonical);
    if (canonical) expect(reencodesUnchanged(bytes)).toBe(true);
  });

  it("never says canonical for bytes protobuf-es would write differently (random mutations)", () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const base = toBinary(
      EchoRequestSchema,
      create(EchoRequestSchema, {
        payload: new Uint8Array([1, 2, 3]),
        delayMs: 300,
        ignoreCancel: true,
        failCode: 3,
        failMessage: "é!",
      }),
    );
    let canonicalSeen = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = new Uint8Array(base);
      for (let m = rand(3) + 1; m > 0; m--) bytes[rand(bytes.length)] = rand(256);
      const cut = bytes.subarray(0, bytes.length - rand(3));
      if (isCanonicalEncoding(EchoRequestSchema, cut)) {
        canonicalSeen++;
        expect(reencodesUnchanged(cut), Buffer.from(cut).toString("hex")).toBe(true);
      }
    }
    expect(canonicalSeen).toBeGreaterThan(0);
  });

  it("answers false for a type with fields it does not cover", () => {
    const msg = create(CreateOrderRequestSchema);
    expect(
      isCanonicalEncoding(CreateOrderRequestSchema, toBinary(CreateOrderRequestSchema, msg)),
    ).toBe(false);
  });
});

describe("requestFingerprint with the received bytes", () => {
  it.each([
    ["canonical", "0a 03 616263 10 07"],
    ["out of order", "10 07 0a 03 616263"],
    ["with an unknown field", "0a 03 616263 30 01"],
    ["with a zero value written", "0a 03 616263 10 00"],
  ])("is the fingerprint of the re-encoded message (%s)", (_name, input) => {
    const bytes = hex(input);
    const message = fromBinary(EchoRequestSchema, bytes);
    expect(requestFingerprint(echo, message, bytes)).toBe(requestFingerprint(echo, message));
  });

  it("is unchanged for a type it re-encodes", () => {
    const method = OrderService.method.createOrder;
    const bytes = toBinary(CreateOrderRequestSchema, create(CreateOrderRequestSchema));
    const message = fromBinary(CreateOrderRequestSchema, bytes);
    expect(requestFingerprint(method, message, bytes)).toBe(requestFingerprint(method, message));
  });
});
