import { Code, ConnectError } from "@connectrpc/connect";

export { GRPC_TIMEOUT_HEADER } from "./call/headers.js";

// The gRPC spec allows at most 8 digits; grpc-js's server parses the header with
// an unanchored regex, so a 9-digit or fractional value is misread there
// (`123.5m` reads as 5 ms). We always emit 1-8 integer digits.
const MAX_DIGITS_VALUE = 99_999_999;

const UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * encodeGrpcTimeout renders a remaining time as a `grpc-timeout` value of 1-8
 * digits and one unit, choosing the finest unit that fits. It rounds down so a
 * peer never sees more time than the caller has; values below 1 µs become `1u`.
 */
export function encodeGrpcTimeout(timeoutMs: number): string {
  if (!(timeoutMs >= 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`timeout ${timeoutMs}ms must be a finite number >= 0`);
  }
  if (timeoutMs < 1) {
    return `${Math.max(1, Math.floor(timeoutMs * 1000))}u`;
  }
  for (const unit of ["m", "S", "M", "H"] as const) {
    const value = Math.floor(timeoutMs / (UNIT_MS[unit] as number));
    if (value <= MAX_DIGITS_VALUE) {
      return `${Math.max(1, value)}${unit}`;
    }
  }
  return `${MAX_DIGITS_VALUE}H`;
}

/**
 * parseGrpcTimeout reads a `grpc-timeout` value strictly (1-8 digits and one of
 * `H M S m u n`, nothing else) and returns milliseconds, `undefined` when the
 * header is absent, or throws a ConnectError with Code.InvalidArgument quoting
 * the bad value.
 */
export function parseGrpcTimeout(value: string | null): number | undefined {
  if (value === null) {
    return undefined;
  }
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) {
    throw new ConnectError(
      `invalid grpc-timeout ${JSON.stringify(value)}: want 1-8 digits and one of H M S m u n`,
      Code.InvalidArgument,
    );
  }
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number);
}
