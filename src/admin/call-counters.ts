import type { DescMethod } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { onSettled } from "../call/settle.js";
import type { Clock } from "../clock.js";
import { type CallCounts, createCallCounts } from "../state/call-counts.js";

/**
 * CallCounters counts calls per method through an interceptor: started,
 * succeeded, failed and the last start time, for snapshots and channelz.
 */
export interface CallCounters {
  /** interceptor counts every call passing it; put it outermost. */
  readonly interceptor: Interceptor;
  /** methods maps `pkg.Service/Method` to its live tally (read, don't write). */
  methods(): ReadonlyMap<string, CallCounts>;
}

/**
 * createCallCounters builds the counters. Per call it costs one WeakMap
 * lookup (cached per method descriptor), three integer bumps and one
 * `clock.now()`; streams are counted when they end, as onSettled sees it.
 */
export function createCallCounters(clock: Clock): CallCounters {
  const byDesc = new WeakMap<DescMethod, CallCounts>();
  const byName = new Map<string, CallCounts>();
  const countsOf = (method: DescMethod): CallCounts => {
    let c = byDesc.get(method);
    if (c === undefined) {
      const name = `${method.parent.typeName}/${method.name}`;
      c = byName.get(name);
      if (c === undefined) {
        c = createCallCounts();
        byName.set(name, c);
      }
      byDesc.set(method, c);
    }
    return c;
  };
  const interceptor: Interceptor = (next) => (req) => {
    const c = countsOf(req.method);
    c.started++;
    c.lastStartedAt = clock.now();
    return onSettled(next(req), (error) => {
      if (error === undefined) c.succeeded++;
      else c.failed++;
    });
  };
  return { interceptor, methods: () => byName };
}
