/**
 * halfSipHash is HalfSipHash (Aumasson and Bernstein's reference
 * implementation, 32-bit output) of `bytes[0, length)` under the 64-bit key
 * (k0, k1), with `cRounds` compression and `dRounds` finalisation rounds:
 * 2 and 4 give the reference's test vectors, 1 and 3 are what a hash table
 * needs (as Rust's standard HashMap uses SipHash-1-3).
 *
 * A keyed hash, so that a client choosing idempotency keys cannot pick ones
 * that land in one bucket of a table (hash flooding) without knowing the
 * key. @private
 */
export function halfSipHash(
  bytes: Uint8Array,
  length: number,
  k0: number,
  k1: number,
  cRounds = 1,
  dRounds = 3,
): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  const rounds = (n: number) => {
    for (let r = 0; r < n; r++) {
      v0 = (v0 + v1) | 0;
      v1 = (v1 << 5) | (v1 >>> 27);
      v1 ^= v0;
      v0 = (v0 << 16) | (v0 >>> 16);
      v2 = (v2 + v3) | 0;
      v3 = (v3 << 8) | (v3 >>> 24);
      v3 ^= v2;
      v0 = (v0 + v3) | 0;
      v3 = (v3 << 7) | (v3 >>> 25);
      v3 ^= v0;
      v2 = (v2 + v1) | 0;
      v1 = (v1 << 13) | (v1 >>> 19);
      v1 ^= v2;
      v2 = (v2 << 16) | (v2 >>> 16);
    }
  };
  const whole = length - (length & 3);
  let i = 0;
  for (; i < whole; i += 4) {
    const m =
      (bytes[i] as number) |
      ((bytes[i + 1] as number) << 8) |
      ((bytes[i + 2] as number) << 16) |
      ((bytes[i + 3] as number) << 24);
    v3 ^= m;
    rounds(cRounds);
    v0 ^= m;
  }
  let b = length << 24;
  const left = length & 3;
  if (left === 3) b |= (bytes[i + 2] as number) << 16;
  if (left >= 2) b |= (bytes[i + 1] as number) << 8;
  if (left >= 1) b |= bytes[i] as number;
  v3 ^= b;
  rounds(cRounds);
  v0 ^= b;
  v2 ^= 0xff;
  rounds(dRounds);
  return (v1 ^ v3) >>> 0;
}
