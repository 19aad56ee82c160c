import { describe, expect, it } from "vitest";
import { createAbortFanout, unwatchAbort, watchAbort } from "../../src/call/abort-fanout.js";

describe("abort fan-out", () => {
  it("calls the watchers present at the abort, in order, through one listener", () => {
    const ac = new AbortController();
    createAbortFanout(ac.signal);
    const seen: string[] = [];
    const w = (name: string) => ({ handleEvent: () => seen.push(name) });
    const a = w("a");
    const b = w("b");
    const c = w("c");
    watchAbort(ac.signal, a);
    watchAbort(ac.signal, b);
    watchAbort(ac.signal, c);
    unwatchAbort(ac.signal, b);
    ac.abort();
    expect(seen).toEqual(["a", "c"]);
    // Once fired, nothing is kept or called again.
    ac.signal.dispatchEvent(new Event("abort"));
    expect(seen).toEqual(["a", "c"]);
  });

  it("a watcher removed by an earlier one during the abort is not called, as with EventTarget", () => {
    const ac = new AbortController();
    createAbortFanout(ac.signal);
    const seen: string[] = [];
    const second = { handleEvent: () => seen.push("second") };
    const first = {
      handleEvent: () => {
        seen.push("first");
        unwatchAbort(ac.signal, second);
      },
    };
    watchAbort(ac.signal, first);
    watchAbort(ac.signal, second);
    ac.abort();
    expect(seen).toEqual(["first"]);
  });

  it("falls back to an ordinary listener on a signal without a fan-out", () => {
    const ac = new AbortController();
    let called = 0;
    const w = { handleEvent: () => called++ };
    watchAbort(ac.signal, w);
    unwatchAbort(ac.signal, w);
    const kept = { handleEvent: () => called++ };
    watchAbort(ac.signal, kept);
    ac.abort();
    expect(called).toBe(1);
  });

  it("is one fan-out per signal", () => {
    const ac = new AbortController();
    expect(createAbortFanout(ac.signal)).toBe(createAbortFanout(ac.signal));
  });
});
