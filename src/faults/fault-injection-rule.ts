import { Code } from "@connectrpc/connect";

/**
 * FaultRule says which faults to inject into the calls it applies to. Delays
 * come first, then at most one error; an empty rule injects nothing.
 */
export interface FaultRule {
  /** delayMs holds the call this long before the handler runs. */
  readonly delayMs?: number;
  /** delayJitterMs adds a uniform random [0, jitter) to each delay; default 0. */
  readonly delayJitterMs?: number;
  /** delayPercent (0..100) is the share of calls delayed; default 100 when a delay is set. */
  readonly delayPercent?: number;
  /** abortPercent (0..100) is the share of calls failed with `abortCode`; default 0. */
  readonly abortPercent?: number;
  /** abortCode is the code of `abortPercent` errors; default UNAVAILABLE. */
  readonly abortCode?: Code;
  /** abortMessage replaces the default text after `injected fault: `. */
  readonly abortMessage?: string;
  /**
   * codes fail further shares of calls with other codes. Shares are disjoint
   * (`abortPercent` first, then `codes` in order) and may add up to 100.
   */
  readonly codes?: readonly FaultCodeRate[];
  /** pushbackMs adds `grpc-retry-pushback-ms` to injected errors (gRFC A6). */
  readonly pushbackMs?: number;
}

/** FaultCodeRate fails `percent` (0..100) of calls with `code`. */
export interface FaultCodeRate {
  readonly code: Code;
  readonly percent: number;
}

/**
 * FaultConfig is a whole fault-injection setup. Keys of `methods` are
 * `"pkg.Service/Method"` or `"pkg.Service"`; a method's own rule beats its
 * service's, which beats `default`.
 */
export interface FaultConfig {
  /** default applies to methods with no rule of their own, except gRPC health. */
  readonly default?: FaultRule;
  readonly methods?: Readonly<Record<string, FaultRule>>;
}

/** FaultConfigUpdate changes parts of a FaultConfig; `null` removes a rule. */
export interface FaultConfigUpdate {
  readonly default?: FaultRule | null;
  readonly methods?: Readonly<Record<string, FaultRule | null>>;
}

/**
 * FaultDecision is what one call gets: an optional delay, then an optional
 * error.
 */
export interface FaultDecision {
  readonly delayMs: number | undefined;
  readonly abort: { readonly code: Code; readonly message: string } | undefined;
}

/** NO_FAULT is the decision for calls without a rule. */
export const NO_FAULT: FaultDecision = Object.freeze({ delayMs: undefined, abort: undefined });

// Health checks must keep reflecting the real state: the default rule never
// applies to them (an explicit "grpc.health.v1.Health" key still does).
const HEALTH_SERVICE = "grpc.health.v1.Health";

const METHOD_KEY = /^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\/[A-Za-z_]\w*)?$/;
const RULE_FIELDS = new Set([
  "delayMs",
  "delayJitterMs",
  "delayPercent",
  "abortPercent",
  "abortCode",
  "abortMessage",
  "codes",
  "pushbackMs",
]);
const CONFIG_FIELDS = new Set(["default", "methods"]);

/**
 * validateFaultConfig checks a config and returns a frozen copy. Bad values
 * (percent outside 0..100, negative delay, unknown code, shares above 100)
 * throw RangeError quoting the value; unknown fields and wrong types throw
 * TypeError.
 */
export function validateFaultConfig(config: FaultConfig): FaultConfig {
  if (typeof config !== "object" || config === null) {
    throw new TypeError(`fault config ${String(config)} must be an object`);
  }
  for (const key of Object.keys(config)) {
    if (!CONFIG_FIELDS.has(key)) {
      throw new TypeError(`unknown fault config field ${JSON.stringify(key)}`);
    }
  }
  const out: { default?: FaultRule; methods?: Record<string, FaultRule> } = {};
  if (config.default !== undefined) {
    out.default = validateFaultRule(config.default, "default");
  }
  if (config.methods !== undefined) {
    if (typeof config.methods !== "object" || config.methods === null) {
      throw new TypeError(`fault config methods ${String(config.methods)} must be an object`);
    }
    const methods: Record<string, FaultRule> = {};
    for (const [key, rule] of Object.entries(config.methods)) {
      if (!METHOD_KEY.test(key)) {
        throw new RangeError(
          `fault method key ${JSON.stringify(key)} must be "pkg.Service/Method" or "pkg.Service"`,
        );
      }
      methods[key] = validateFaultRule(rule, `methods[${JSON.stringify(key)}]`);
    }
    out.methods = Object.freeze(methods);
  }
  return Object.freeze(out);
}

function validateFaultRule(rule: FaultRule, path: string): FaultRule {
  if (typeof rule !== "object" || rule === null) {
    throw new TypeError(`fault rule ${path} ${String(rule)} must be an object`);
  }
  for (const key of Object.keys(rule)) {
    if (!RULE_FIELDS.has(key)) {
      throw new TypeError(`unknown fault rule field ${path}.${key}`);
    }
  }
  const nonNegative = (name: keyof FaultRule, value: number | undefined) => {
    if (value !== undefined && !(typeof value === "number" && value >= 0 && value < Infinity)) {
      throw new RangeError(`${path}.${name} ${String(value)} must be a finite number >= 0`);
    }
  };
  const percent = (name: string, value: number | undefined) => {
    if (value !== undefined && !(typeof value === "number" && value >= 0 && value <= 100)) {
      throw new RangeError(`${path}.${name} ${String(value)} must be in 0..100`);
    }
  };
  const code = (name: string, value: Code | undefined) => {
    if (value !== undefined && !isErrorCode(value)) {
      throw new RangeError(`${path}.${name} ${String(value)} is not a gRPC error code (1..16)`);
    }
  };
  nonNegative("delayMs", rule.delayMs);
  nonNegative("delayJitterMs", rule.delayJitterMs);
  percent("delayPercent", rule.delayPercent);
  percent("abortPercent", rule.abortPercent);
  code("abortCode", rule.abortCode);
  if (rule.abortMessage !== undefined && typeof rule.abortMessage !== "string") {
    throw new TypeError(`${path}.abortMessage ${String(rule.abortMessage)} must be a string`);
  }
  if (
    rule.pushbackMs !== undefined &&
    !(Number.isSafeInteger(rule.pushbackMs) && rule.pushbackMs >= 0)
  ) {
    // gRFC A6: clients read anything but a non-negative integer as "do not retry".
    throw new RangeError(`${path}.pushbackMs ${String(rule.pushbackMs)} must be an integer >= 0`);
  }
  let total = rule.abortPercent ?? 0;
  const codes: FaultCodeRate[] = [];
  if (rule.codes !== undefined) {
    if (!Array.isArray(rule.codes)) {
      throw new TypeError(`${path}.codes ${String(rule.codes)} must be an array`);
    }
    rule.codes.forEach((entry: FaultCodeRate, i: number) => {
      if (typeof entry !== "object" || entry === null) {
        throw new TypeError(`${path}.codes[${i}] ${String(entry)} must be { code, percent }`);
      }
      code(`codes[${i}].code`, entry.code);
      percent(`codes[${i}].percent`, entry.percent);
      if (entry.code === undefined || entry.percent === undefined) {
        throw new TypeError(`${path}.codes[${i}] needs both code and percent`);
      }
      total += entry.percent;
      codes.push(Object.freeze({ code: entry.code, percent: entry.percent }));
    });
  }
  // Tolerate float rounding in shares like 33.3 + 33.3 + 33.4.
  if (total > 100 + 1e-9) {
    throw new RangeError(`${path} error shares add up to ${total}%, must be <= 100`);
  }
  const copy: FaultRule = { ...rule, ...(rule.codes === undefined ? {} : { codes }) };
  return Object.freeze(copy);
}

function isErrorCode(value: unknown): value is Code {
  return (
    typeof value === "number" &&
    Number.isInteger(value) &&
    value >= Code.Canceled &&
    value <= Code.Unauthenticated
  );
}

/** mergeFaultConfig applies an update to a config; `null` values remove rules. */
export function mergeFaultConfig(current: FaultConfig, update: FaultConfigUpdate): FaultConfig {
  const out: { default?: FaultRule; methods?: Record<string, FaultRule> } = {};
  const def = update.default === undefined ? current.default : update.default;
  if (def !== undefined && def !== null) {
    out.default = def;
  }
  const methods: Record<string, FaultRule> = { ...current.methods };
  for (const [key, rule] of Object.entries(update.methods ?? {})) {
    if (rule === null) {
      delete methods[key];
    } else {
      methods[key] = rule;
    }
  }
  if (Object.keys(methods).length > 0) {
    out.methods = methods;
  }
  return out;
}

/**
 * ruleFor picks the rule of a call: `service/method`, then `service`, then the
 * default (never for gRPC health).
 */
export function ruleFor(
  config: FaultConfig,
  service: string,
  method: string,
): FaultRule | undefined {
  const methods = config.methods;
  if (methods !== undefined) {
    const own = Object.hasOwn(methods, `${service}/${method}`)
      ? methods[`${service}/${method}`]
      : undefined;
    if (own !== undefined) return own;
    const svc = Object.hasOwn(methods, service) ? methods[service] : undefined;
    if (svc !== undefined) return svc;
  }
  return service === HEALTH_SERVICE ? undefined : config.default;
}

/**
 * decideFault rolls the dice for one call. It draws from `random` ([0, 1)) in
 * a fixed order so seeded tests are exact: once for the delay when the rule
 * has one, once more for its jitter when delayed with jitter, once for the
 * error when any error share is set.
 */
export function decideFault(
  rule: FaultRule | undefined,
  random: () => number,
  methodName: string,
): FaultDecision {
  if (rule === undefined) return NO_FAULT;
  let delayMs: number | undefined;
  const baseDelay = rule.delayMs ?? 0;
  const jitter = rule.delayJitterMs ?? 0;
  if (baseDelay > 0 || jitter > 0) {
    if (random() * 100 < (rule.delayPercent ?? 100)) {
      delayMs = baseDelay + (jitter > 0 ? random() * jitter : 0);
    }
  }
  let abort: FaultDecision["abort"];
  const shares = errorShares(rule);
  if (shares.length > 0) {
    const roll = random() * 100;
    let upTo = 0;
    for (const share of shares) {
      upTo += share.percent;
      if (roll < upTo) {
        const text = rule.abortMessage ?? `${codeName(share.code)} on ${methodName}`;
        abort = { code: share.code, message: `injected fault: ${text}` };
        break;
      }
    }
  }
  if (delayMs === undefined && abort === undefined) return NO_FAULT;
  return { delayMs, abort };
}

function errorShares(rule: FaultRule): readonly FaultCodeRate[] {
  const shares: FaultCodeRate[] = [];
  if ((rule.abortPercent ?? 0) > 0) {
    shares.push({ code: rule.abortCode ?? Code.Unavailable, percent: rule.abortPercent ?? 0 });
  }
  for (const c of rule.codes ?? []) {
    if (c.percent > 0) shares.push(c);
  }
  return shares;
}

/** codeName spells a code as gRPC does: `DEADLINE_EXCEEDED`. */
function codeName(code: Code): string {
  return Code[code].replace(/(?<!^)([A-Z])/g, "_$1").toUpperCase();
}
