import type { Interceptor } from "@connectrpc/connect";
import { CRITICALITY_HEADER } from "../call/headers.js";
import { type Criticality, isCriticality } from "./criticality.js";

/**
 * CriticalityOption sets the `x-mesh-criticality` of a client's calls: one
 * criticality for every method, or a table keyed by `"pkg.Service/Method"` or
 * `"pkg.Service"` (a method's own entry beats its service's; others send none,
 * which servers read as `default`).
 */
export type CriticalityOption = Criticality | Readonly<Record<string, Criticality>>;

const METHOD_KEY = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\/[A-Za-z_]\w*)?$/;

/**
 * createCriticalityInterceptor builds a client interceptor that puts the
 * configured criticality on each call's `x-mesh-criticality` header, unless
 * the call already carries one (a per-call header wins). Options are
 * validated here (RangeError naming the bad key or value).
 */
export function createCriticalityInterceptor(option: CriticalityOption): Interceptor {
  const criticalityFor = compile(option);
  return (next) => (req) => {
    if (!req.header.has(CRITICALITY_HEADER)) {
      const c = criticalityFor(req.service.typeName, `${req.service.typeName}/${req.method.name}`);
      if (c !== undefined) req.header.set(CRITICALITY_HEADER, c);
    }
    return next(req);
  };
}

function compile(
  option: CriticalityOption,
): (service: string, method: string) => Criticality | undefined {
  if (typeof option === "string") {
    if (!isCriticality(option)) {
      throw new RangeError(
        `criticality ${JSON.stringify(option)} must be critical, default or sheddable`,
      );
    }
    return () => option;
  }
  if (typeof option !== "object" || option === null) {
    throw new TypeError(`criticality ${String(option)} must be a criticality or a table of them`);
  }
  const table = new Map<string, Criticality>();
  for (const [key, value] of Object.entries(option)) {
    if (!METHOD_KEY.test(key)) {
      throw new RangeError(
        `criticality key ${JSON.stringify(key)} must be "pkg.Service/Method" or "pkg.Service"`,
      );
    }
    if (!isCriticality(value)) {
      throw new RangeError(
        `criticality[${JSON.stringify(key)}] ${JSON.stringify(value)} must be critical, default or sheddable`,
      );
    }
    table.set(key, value);
  }
  return (service, method) => table.get(method) ?? table.get(service);
}
