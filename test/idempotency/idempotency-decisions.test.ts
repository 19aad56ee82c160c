import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { CreateOrderRequestSchema, OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import { ErrorInfoSchema } from "../../src/idempotency/error-info.js";
import { requestFingerprint } from "../../src/idempotency/fingerprint.js";
import { checkIdempotencyKey, keyDigest } from "../../src/idempotency/idempotency-key.js";
import {
  claimLeaseMs,
  DETERMINISTIC_ERROR_CODES,
  errorDisposition,
  nextPollMs,
  renewalLeaseMs,
} from "../../src/idempotency/idempotency-policy.js";
import {
  decodeOutcome,
  encodeOutcome,
  type IdempotencyOutcome,
  OutcomeDecodeError,
  outcomeSize,
} from "../../src/idempotency/outcome.js";
import { formatRecordKey } from "../../src/idempotency/store.js";

describe("idempotency key validation", () => {
  it.each([
    ["a", "single character"],
    ["x".repeat(255), "255 characters"],
    ["550e8400-e29b-41d4-a716-446655440000", "a UUID"],
    ["!~azAZ09-_.:/+=", "printable punctuation"],
    ["a,b", "a comma without a space"],
  ])("accepts %j (%s)", (value) => {
    expect(checkIdempotencyKey(value)).toEqual({ ok: true, key: value });
  });

  it.each([
    ["", "is empty"],
    ["x".repeat(256), "is 256 characters, want 1-255"],
    ["café", "U+00E9 at index 3"],
    ["ab\tcd", "U+0009 at index 2"],
    ["a b", "U+0020 at index 1"],
    ["\u0001abc", "U+0001 at index 0"],
    ["key-1, key-2", "exactly one value, got 2"],
    ["a, b, c", "exactly one value, got 3"],
    ["a, b c", "U+0020 at index 2"],
  ])("rejects %j: %s", (value, problem) => {
    const check = checkIdempotencyKey(value);
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.problem).toContain(problem);
      if (value.length > 3) expect(check.problem).not.toContain(value);
    }
  });

  it("names a key in messages by a 12-digit SHA-256 prefix only", () => {
    expect(keyDigest("abc")).toBe("ba7816bf8f01");
    const check = checkIdempotencyKey(`secret-${"x".repeat(300)}`);
    expect(!check.ok && check.problem).toContain(
      `sha256 ${keyDigest(`secret-${"x".repeat(300)}`)}`,
    );
    expect(!check.ok && check.problem).not.toContain("secret");
  });
});

describe("idempotency policy decisions", () => {
  it("stores deterministic errors and releases transient ones", () => {
    const stored = new Set(DETERMINISTIC_ERROR_CODES);
    for (const c of [
      Code.InvalidArgument,
      Code.NotFound,
      Code.AlreadyExists,
      Code.PermissionDenied,
      Code.FailedPrecondition,
      Code.OutOfRange,
      Code.Unimplemented,
    ]) {
      expect(errorDisposition(c, stored), Code[c]).toBe("store");
    }
    for (const c of [
      Code.Unavailable,
      Code.DeadlineExceeded,
      Code.ResourceExhausted,
      Code.Aborted,
      Code.Canceled,
      Code.Internal,
      Code.Unknown,
      Code.DataLoss,
      Code.Unauthenticated,
    ]) {
      expect(errorDisposition(c, stored), Code[c]).toBe("release");
    }
  });

  it("ties the claim lease to the deadline, capped, plus a margin", () => {
    expect(claimLeaseMs(undefined, 60_000, 1_000)).toBe(61_000);
    expect(claimLeaseMs(250, 60_000, 1_000)).toBe(1_250);
    expect(claimLeaseMs(600_000, 60_000, 1_000)).toBe(61_000);
    expect(claimLeaseMs(-5, 60_000, 1_000)).toBe(1_000);
  });

  it("renews the short lease until the claim's horizon, then stops", () => {
    expect(renewalLeaseMs(500, 61_000, 2_000)).toBe(2_000);
    expect(renewalLeaseMs(59_500, 61_000, 2_000)).toBe(1_500);
    expect(renewalLeaseMs(60_999, 61_000, 2_000)).toBe(1);
    expect(renewalLeaseMs(61_000, 61_000, 2_000)).toBeUndefined();
    expect(renewalLeaseMs(70_000, 61_000, 2_000)).toBeUndefined();
  });

  it("polls with doubling waits, capped, never past the lease's end", () => {
    expect(nextPollMs(undefined, 10_000, 5, 100)).toBe(5);
    expect(nextPollMs(5, 10_000, 5, 100)).toBe(10);
    expect(nextPollMs(80, 10_000, 5, 100)).toBe(100);
    expect(nextPollMs(100, 10_000, 5, 100)).toBe(100);
    expect(nextPollMs(100, 30, 5, 100)).toBe(31);
    expect(nextPollMs(100, 0, 5, 100)).toBe(1);
  });

  it("keeps principal, method and key apart in record keys", () => {
    expect(formatRecordKey("a", "b/c", "d")).not.toBe(formatRecordKey('a"', "b/c", "d"));
    expect(formatRecordKey("a,b", "m", "k")).not.toBe(formatRecordKey("a", "b,m", "k"));
  });

  // Stores persist record keys (Redis, Postgres, files): the format must stay
  // JSON.stringify([principal, method, key]) exactly, whatever path makes it.
  it.each([
    ["anonymous", "pkg.Svc/M", "550e8400-e29b-41d4-a716-446655440000"],
    ["spiffe://a/ns/x/sa/web", "pkg.Svc/M mirror", "k1"],
    ["anonymous", "pkg.Svc/M", 'quote"inside'],
    ["anonymous", "pkg.Svc/M", "back\\slash"],
    ['pri"ncipal', "pkg.Svc/M", "k"],
    ["tab\tnew\nline\u0000", "pkg.Svc/M", "k"],
    ["anonymous", "pkg.Svc/M", "ctl\u001f"],
    ["h\u00e9llo \u2028 \u{1f600}", "pkg.Svc/M", "k"],
    ["anonymous", "pkg.Svc/M", "lone\ud800"],
    ["anonymous", "pkg.Svc/M", "pair\u{1f600}"],
    ["", "", ""],
  ])("formats record key [%j, %j, %j] as JSON", (principal, method, key) => {
    // Twice, and after another principal for the same method: the cached
    // prefix must follow the principal.
    expect(formatRecordKey(principal, method, key)).toBe(JSON.stringify([principal, method, key]));
    expect(formatRecordKey("other", method, key)).toBe(JSON.stringify(["other", method, key]));
    expect(formatRecordKey(principal, method, key)).toBe(JSON.stringify([principal, method, key]));
  });

  it("fingerprints the method and the request bytes", () => {
    const req = create(CreateOrderRequestSchema, { customerId: "c-1" });
    const create1 = requestFingerprint(OrderService.method.createOrder, req);
    expect(create1).toMatch(/^[0-9a-f]{64}$/);
    expect(
      requestFingerprint(
        OrderService.method.createOrder,
        create(CreateOrderRequestSchema, { customerId: "c-1" }),
      ),
    ).toBe(create1);
    expect(
      requestFingerprint(
        OrderService.method.createOrder,
        create(CreateOrderRequestSchema, { customerId: "c-2" }),
      ),
    ).not.toBe(create1);
  });
});

describe("idempotency outcome codec", () => {
  const outcomes: IdempotencyOutcome[] = [
    {
      kind: "ok",
      message: new Uint8Array([0, 1, 2, 255]),
      header: [
        ["x-a", "1"],
        ["x-a-bin", "AAE="],
      ],
      trailer: [["x-t", "t"]],
    },
    {
      kind: "error",
      code: Code.NotFound,
      message: 'order "o-1" not found: 100%',
      details: [{ type: "google.rpc.ErrorInfo", value: new Uint8Array([10, 1, 82]) }],
      metadata: [["x-m", "v"]],
    },
    { kind: "unstored", bytes: 2_000_000 },
  ];

  it.each(outcomes.map((o) => [o.kind, o] as const))("round-trips a %s outcome", (_, o) => {
    expect(decodeOutcome(encodeOutcome(o))).toEqual(o);
  });

  it("counts message bytes, headers and details in outcomeSize", () => {
    expect(outcomeSize(outcomes[0] as IdempotencyOutcome)).toBe(4 + (3 + 1) + (7 + 4) + (3 + 1));
    expect(outcomeSize({ kind: "unstored", bytes: 9 })).toBe(0);
  });

  it.each(["", "{}", '{"k":"ok","m":1}', '{"k":"error","c":99,"m":"x","d":[],"h":[]}'])(
    "rejects a corrupt stored outcome %j",
    (text) => {
      expect(() => decodeOutcome(text)).toThrow(OutcomeDecodeError);
    },
  );
});

describe("idempotency ErrorInfo detail", () => {
  it("encodes google.rpc.ErrorInfo with reason=1, domain=2, metadata=3 (map)", () => {
    const info = create(ErrorInfoSchema, {
      reason: "R",
      domain: "D",
      metadata: { k: "v" },
    });
    expect(ErrorInfoSchema.typeName).toBe("google.rpc.ErrorInfo");
    const bytes = toBinary(ErrorInfoSchema, info);
    // 0a 01 'R' | 12 01 'D' | 1a 06 (0a 01 'k' 12 01 'v')
    expect(Buffer.from(bytes).toString("hex")).toBe("0a0152120144" + "1a060a016b120176");
    expect(fromBinary(ErrorInfoSchema, bytes).metadata).toEqual({ k: "v" });
  });
});
