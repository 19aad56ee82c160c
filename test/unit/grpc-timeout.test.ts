import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { encodeGrpcTimeout, parseGrpcTimeout } from "../../src/index.js";

describe("grpc-timeout encoding", () => {
  it.each([
    [0, "1u"],
    [0.0004, "1u"],
    [0.5, "500u"],
    [1, "1m"],
    [123.9, "123m"],
    [99_999_999, "99999999m"],
    [100_000_000, "100000S"],
    [99_999_999_000, "99999999S"],
    [100_000_000_000, "1666666M"],
    [1e12, "16666666M"],
    [1e13, "2777777H"],
    [Number.MAX_SAFE_INTEGER, "99999999H"],
  ])("encodes %d ms as %s", (ms, want) => {
    expect(encodeGrpcTimeout(ms)).toBe(want);
    expect(encodeGrpcTimeout(ms)).toMatch(/^\d{1,8}[HMSmun]$/);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])("refuses %d with a RangeError", (ms) => {
    expect(() => encodeGrpcTimeout(ms)).toThrow(RangeError);
  });

  it("never announces more time than there is", () => {
    for (let ms = 0.001; ms < 1e12; ms *= 1.37) {
      expect(parseGrpcTimeout(encodeGrpcTimeout(ms)) ?? 0).toBeLessThanOrEqual(Math.max(ms, 0.001));
    }
  });
});

describe("grpc-timeout parsing", () => {
  it.each([
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["3S", 3_000],
    ["4m", 4],
    ["5000u", 5],
    ["6000000n", 6],
    ["99999999m", 99_999_999],
  ])("parses %s as %d ms", (value, ms) => {
    expect(parseGrpcTimeout(value)).toBeCloseTo(ms, 9);
  });

  it("returns undefined when the header is absent", () => {
    expect(parseGrpcTimeout(null)).toBeUndefined();
  });

  it.each(["123.5m", "123456789m", "", "m", "10", "-5m", "5x", " 5m", "5m ", "0x10m", "1e3m"])(
    "rejects %j with INVALID_ARGUMENT quoting the value",
    (value) => {
      try {
        parseGrpcTimeout(value);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ConnectError);
        expect((e as ConnectError).code).toBe(Code.InvalidArgument);
        expect((e as ConnectError).rawMessage).toContain(JSON.stringify(value));
      }
    },
  );
});
