import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { createFailureClassifier, DEFAULT_FAILURE_CODES } from "../../src/breaker/call-outcome.js";

describe("failure classifier", () => {
  const isFailure = createFailureClassifier();

  it("defaults to UNAVAILABLE, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED", () => {
    expect([...DEFAULT_FAILURE_CODES].sort((a, b) => a - b)).toEqual([2, 4, 13, 14]);
  });

  it.each([
    [{ ok: true }, false],
    [{ ok: true, code: Code.Unavailable }, false],
    [{ ok: false, code: Code.Unavailable }, true],
    [{ ok: false, code: Code.Internal }, true],
    [{ ok: false, code: Code.Unknown }, true],
    [{ ok: false, code: Code.DeadlineExceeded }, true],
    [{ ok: false }, true],
    [{ ok: false, code: Code.NotFound }, false],
    [{ ok: false, code: Code.InvalidArgument }, false],
    [{ ok: false, code: Code.Canceled }, false],
    [{ ok: false, code: Code.ResourceExhausted }, false],
  ])("classifies %o as failure=%s", (outcome, expected) => {
    expect(isFailure(outcome)).toBe(expected);
  });

  it("takes a custom code set", () => {
    const only = createFailureClassifier([Code.ResourceExhausted]);
    expect(only({ ok: false, code: Code.ResourceExhausted })).toBe(true);
    expect(only({ ok: false, code: Code.Unavailable })).toBe(false);
  });

  it.each([0, 17, 1.5, -1])("rejects code %s", (code) => {
    expect(() => createFailureClassifier([code])).toThrow(
      new RangeError(`failure code ${code} must be an integer in 1..16`),
    );
  });
});
