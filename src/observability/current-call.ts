import { type Logger, pino } from "pino";
import { currentCallScope } from "../call/call-scope.js";
import { loggerKey, traceContextKey } from "./context-keys.js";
import type { TraceContext } from "./trace-context.js";

let rootLogger: Logger | undefined;

/**
 * setRootLogger sets what `currentLogger()` returns outside an observed call;
 * default a `pino()` logger writing JSON to stdout at info.
 */
export function setRootLogger(logger: Logger): void {
  rootLogger = logger;
}

/**
 * currentLogger returns the logger of the incoming call being handled (bound
 * to its trace_id, span_id and rpc fields), or the root logger outside one.
 */
export function currentLogger(): Logger {
  const logger = currentCallScope()?.values.get(loggerKey);
  if (logger !== undefined) {
    return logger;
  }
  rootLogger ??= pino();
  return rootLogger;
}

/** currentTraceContext returns the span of the incoming call being handled, if any. */
export function currentTraceContext(): TraceContext | undefined {
  return currentCallScope()?.values.get(traceContextKey);
}
