import { describe, expect, it } from "vitest";
import { isoTime } from "../../src/observability/iso-time.js";

describe("isoTime", () => {
  it("renders what Date#toISOString renders", () => {
    const samples = [
      0, 1, 9, 10, 99, 100, 999, 1000, -1, -999, -1000, -1001, -0.5, 0.9, 1_764_649_393_123.7,
      253_402_300_799_999, 253_402_300_800_000, -62_198_755_200_000, 8.64e15, -8.64e15,
    ];
    for (let i = 0; i < 2000; i++) samples.push(Math.random() * 4e12 - 2e12);
    for (const ms of samples) {
      expect(isoTime(ms), String(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it("reuses the second it formatted last, and leaves it for another", () => {
    expect(isoTime(1_764_649_393_000)).toBe("2025-12-02T04:23:13.000Z");
    expect(isoTime(1_764_649_393_042)).toBe("2025-12-02T04:23:13.042Z");
    expect(isoTime(1_764_649_394_007)).toBe("2025-12-02T04:23:14.007Z");
  });

  it("throws as Date does outside its range", () => {
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });
});
