import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { abortableSleep } from "../call/signals.js";
import { type Clock, systemClock } from "../clock.js";
import {
  decideFault,
  type FaultConfig,
  type FaultConfigUpdate,
  mergeFaultConfig,
  ruleFor,
  validateFaultConfig,
} from "./fault-injection-rule.js";

export type {
  FaultCodeRate,
  FaultConfig,
  FaultConfigUpdate,
  FaultRule,
} from "./fault-injection-rule.js";

/**
 * FAULT_HEADER marks injected faults: `abort` in the metadata of injected
 * errors (sent as trailers, or headers in the Connect protocol), `delay` in the
 * response headers of delayed calls that succeed.
 */
export const FAULT_HEADER = "x-mesh-fault";

/** FaultInjectorOptions are the injector's sources of chance and time. */
export interface FaultInjectorOptions {
  /** random returns [0, 1); default Math.random. Seed it for exact tests. */
  readonly random?: () => number;
  /** clock times the delays; default systemClock. */
  readonly clock?: Clock;
}

/** FaultCounts counts the faults injected into one method. */
export interface FaultCounts {
  readonly delays: number;
  readonly aborts: number;
}

/** FaultInjector injects faults into a server's calls, reconfigurable at run time. */
export interface FaultInjector {
  /** interceptor belongs in the "faults" slot, right before the handler. */
  readonly interceptor: Interceptor;
  /** set replaces the whole config; it is validated first (RangeError, TypeError). */
  set(config: FaultConfig): void;
  /** update changes the default and the given method keys; `null` removes a rule. */
  update(update: FaultConfigUpdate): void;
  /** clear stops injecting faults. */
  clear(): void;
  /** config is the current (frozen) config. */
  config(): FaultConfig;
  /** stats counts injected delays and aborts by `"pkg.Service/Method"`, since creation. */
  stats(): Readonly<Record<string, FaultCounts>>;
}

const EMPTY: FaultConfig = Object.freeze({});

/**
 * createFaultInjector builds a server interceptor that delays and fails calls
 * by the rules of `initial`, for tests, benchmarks and demos. Each call reads
 * the config snapshot current when it starts; set/update/clear swap the
 * snapshot whole, so the next call sees the change.
 *
 * Delays happen before the handler and end early, with the call's own error,
 * when the call is cancelled or times out. Injected errors are ConnectErrors
 * reading `injected fault: ...`, carrying `x-mesh-fault: abort` and, when the
 * rule sets `pushbackMs`, `grpc-retry-pushback-ms`; the handler does not run.
 */
export function createFaultInjector(
  initial: FaultConfig = EMPTY,
  options: FaultInjectorOptions = {},
): FaultInjector {
  const random = options.random ?? Math.random;
  const clock = options.clock ?? systemClock;
  let current = validateFaultConfig(initial);
  const counts = new Map<string, { delays: number; aborts: number }>();
  const count = (method: string) => {
    let c = counts.get(method);
    if (c === undefined) {
      c = { delays: 0, aborts: 0 };
      counts.set(method, c);
    }
    return c;
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const service = req.service.typeName;
    const methodName = `${service}/${req.method.name}`;
    const rule = ruleFor(current, service, req.method.name);
    const decision = decideFault(rule, random, methodName);
    if (decision.delayMs !== undefined) {
      count(methodName).delays++;
      await abortableSleep(clock, decision.delayMs, req.signal);
    }
    if (decision.abort !== undefined) {
      count(methodName).aborts++;
      const metadata = new Headers({ [FAULT_HEADER]: "abort" });
      if (rule?.pushbackMs !== undefined) {
        metadata.set(RETRY_PUSHBACK_HEADER, String(rule.pushbackMs));
      }
      throw new ConnectError(decision.abort.message, decision.abort.code, metadata);
    }
    const res = await next(req);
    if (decision.delayMs !== undefined) {
      res.header.set(FAULT_HEADER, "delay");
    }
    return res;
  };

  const set = (config: FaultConfig) => {
    current = validateFaultConfig(config);
  };
  return {
    interceptor,
    set,
    update: (update) => set(mergeFaultConfig(current, update)),
    clear: () => set(EMPTY),
    config: () => current,
    stats: () => {
      const out: Record<string, FaultCounts> = {};
      for (const [method, c] of counts) {
        out[method] = Object.freeze({ ...c });
      }
      return Object.freeze(out);
    },
  };
}
