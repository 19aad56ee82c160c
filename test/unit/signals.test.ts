import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  abortableSleep,
  abortReason,
  deadlineSignal,
  linkSignals,
  raceAbort,
} from "../../src/call/signals.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

const settledState = async (p: Promise<unknown>) => {
  let state = "pending";
  p.then(
    () => {
      state = "resolved";
    },
    () => {
      state = "rejected";
    },
  );
  await Promise.resolve();
  await Promise.resolve();
  return state;
};

describe("abortReason", () => {
  it("keeps a ConnectError reason, makes other reasons CANCELED", () => {
    const c = new AbortController();
    c.abort(new ConnectError("late", Code.DeadlineExceeded));
    expect(abortReason(c.signal).code).toBe(Code.DeadlineExceeded);
    const d = new AbortController();
    d.abort("bye");
    expect(abortReason(d.signal).code).toBe(Code.Canceled);
    expect(abortReason(d.signal).rawMessage).toContain("bye");
  });
});

describe("abortableSleep", () => {
  it("resolves when the clock reaches the delay, not before", async () => {
    const clock = createFakeClock();
    const p = abortableSleep(clock, 100, new AbortController().signal);
    clock.advance(99);
    expect(await settledState(p)).toBe("pending");
    clock.advance(1);
    expect(await settledState(p)).toBe("resolved");
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects with the abort reason and clears its timer", async () => {
    const clock = createFakeClock();
    const c = new AbortController();
    const p = abortableSleep(clock, 100, c.signal);
    c.abort(new ConnectError("closed", Code.Canceled));
    await expect(p).rejects.toMatchObject({ code: Code.Canceled, rawMessage: "closed" });
    expect(clock.pendingTimers).toBe(0);
  });

  it("rejects at once on an aborted signal, resolves at once for 0 ms", async () => {
    const clock = createFakeClock();
    const c = new AbortController();
    c.abort();
    await expect(abortableSleep(clock, 0, c.signal)).rejects.toMatchObject({ code: Code.Canceled });
    await expect(abortableSleep(clock, 0, new AbortController().signal)).resolves.toBeUndefined();
  });
});

describe("deadlineSignal", () => {
  it("aborts with DEADLINE_EXCEEDED when the clock reaches the timeout", () => {
    const clock = createFakeClock();
    const d = deadlineSignal(clock, 50, []);
    clock.advance(49);
    expect(d.signal.aborted).toBe(false);
    clock.advance(1);
    expect(abortReason(d.signal).code).toBe(Code.DeadlineExceeded);
  });

  it("follows its inputs, and cleanup removes the timer", () => {
    const clock = createFakeClock();
    const input = new AbortController();
    const d = deadlineSignal(clock, 50, [input.signal, undefined]);
    input.abort(new ConnectError("caller", Code.Canceled));
    expect(abortReason(d.signal).rawMessage).toBe("caller");
    d.cleanup();
    expect(clock.pendingTimers).toBe(0);
  });

  it("returns a single input as is when there is no timeout", () => {
    const clock = createFakeClock();
    const input = new AbortController();
    const d = deadlineSignal(clock, undefined, [undefined, input.signal, undefined]);
    expect(d.signal).toBe(input.signal);
    d.cleanup();
    expect(deadlineSignal(clock, 50, [input.signal]).signal).not.toBe(input.signal);
  });

  it("has no timer without a timeout, aborts at once for 0", () => {
    const clock = createFakeClock();
    expect(deadlineSignal(clock, undefined, []).signal.aborted).toBe(false);
    expect(clock.pendingTimers).toBe(0);
    expect(deadlineSignal(clock, 0, []).signal.aborted).toBe(true);
  });
});

describe("linkSignals", () => {
  it("returns a single signal as is", () => {
    const c = new AbortController();
    expect(linkSignals([c.signal, undefined]).signal).toBe(c.signal);
  });

  it("aborts when any input aborts, with its reason; cleanup unlinks", () => {
    const a = new AbortController();
    const b = new AbortController();
    const linked = linkSignals([a.signal, b.signal]);
    b.abort("b went");
    expect(linked.signal.reason).toBe("b went");
    const c = new AbortController();
    const d = new AbortController();
    const unlinked = linkSignals([c.signal, d.signal]);
    unlinked.cleanup();
    c.abort();
    expect(unlinked.signal.aborted).toBe(false);
  });
});

describe("raceAbort", () => {
  it("settles with the promise, or with the abort reason first", async () => {
    await expect(raceAbort(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7);
    const c = new AbortController();
    const never = new Promise<number>(() => {});
    const raced = raceAbort(never, c.signal);
    c.abort(new ConnectError("late", Code.DeadlineExceeded));
    await expect(raced).rejects.toMatchObject({ code: Code.DeadlineExceeded });
  });
});
