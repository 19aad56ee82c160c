import { type Logger, symbols } from "pino";

/**
 * CallLogger is an incoming call's logger, made only when used: `logger` is
 * what handlers see in `loggerKey` (a stand-in that builds the pino child on
 * first use), `write` writes a line bound to the call's fields.
 *
 * A pino child per call (its bindings serialized up front) cost ~8 µs per
 * call even with the level at silent; most calls write at most their one
 * `finished call` line, which `write` renders without a per-call child, on
 * the method's child, when the root logger allows it (see mergeable).
 * @private
 */
export interface CallLogger {
  /** logger is the call's child logger, built on first use. */
  readonly logger: Logger;
  /** isLevelEnabled says whether a line at `level` would be written. */
  isLevelEnabled(level: string): boolean;
  /** write logs `fields` and `message` at `level` with the call's bound fields first. */
  write(level: LogLevel, fields: Record<string, unknown>, message: string): void;
}

/** LogLevel is a pino level a call line is written at. */
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal";

/**
 * createCallLoggerFactory returns, for one root logger, the per-method
 * constructor of call loggers: `forMethod(fields)` binds a method's constant
 * fields (component, service, method, type) once, and the function it returns
 * makes each call's CallLogger; `bindings` builds the call's own bound fields
 * (only when needed), a new object each time. A call's lines carry the
 * method's fields first, then the call's.
 * @private
 */
export function createCallLoggerFactory(
  base: Logger,
): (fields: Record<string, unknown>) => (bindings: () => Record<string, unknown>) => CallLogger {
  return (fields) => {
    const method = createMethodLogger(base, fields);
    if (method !== undefined) {
      return (bindings) => new LazyCallLogger(method, true, bindings);
    }
    // A real child per call, bound to the method's fields and the call's.
    const scope = () => base;
    return (bindings) =>
      new LazyCallLogger(scope, false, () => Object.assign({}, fields, bindings()));
  };
}

/**
 * createMethodLogger returns a function giving the child of `base` bound to
 * one method's constant `fields`, or undefined when `base` formats bindings
 * or lines (see mergeable; write the fields on each line then): pino renders
 * a child's bindings once, so a line written on it serializes only the
 * call's own fields. The child is made
 * again when `base.setBindings` changed the bindings it copied; its level is
 * `base`'s own (a child made without options inherits it).
 * @private
 */
export function createMethodLogger(
  base: Logger,
  fields: Record<string, unknown>,
): (() => Logger) | undefined {
  if (!mergeable(base)) return undefined;
  const holder = base as unknown as Record<symbol, unknown>;
  let chindings = holder[symbols.chindingsSym];
  let child = base.child(fields);
  return () => {
    const now = holder[symbols.chindingsSym];
    if (now !== chindings) {
      chindings = now;
      child = base.child(fields);
    }
    return child;
  };
}

// One class and one shared Proxy handler: a call that never logs pays for two
// small objects, not a child logger.
class LazyCallLogger implements CallLogger {
  readonly logger: Logger;
  #child: Logger | undefined;
  readonly #scope: () => Logger;
  readonly #merge: boolean;
  readonly #bindings: () => Record<string, unknown>;

  constructor(scope: () => Logger, merge: boolean, bindings: () => Record<string, unknown>) {
    this.#scope = scope;
    this.#merge = merge;
    this.#bindings = bindings;
    this.logger = new Proxy(this, LAZY_LOGGER) as unknown as Logger;
  }

  materialize(): Logger {
    this.#child ??= this.#scope().child(this.#bindings());
    return this.#child;
  }

  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.#scope()).isLevelEnabled(level);
  }

  write(level: LogLevel, fields: Record<string, unknown>, message: string): void {
    if (this.#child === undefined && this.#merge) {
      // The bindings object is fresh per call: fill it rather than copy both.
      this.#scope()[level](Object.assign(this.#bindings(), fields), message);
    } else {
      this.materialize()[level](fields, message);
    }
  }
}

/**
 * LAZY_LOGGER makes a LazyCallLogger's `logger` forward everything to the
 * real child, built on first use. Methods run with `this` = the stand-in,
 * whose reads and writes reach the child; a child of the stand-in
 * (`Object.create` in pino's `child`) sees the child's properties.
 */
const LAZY_LOGGER: ProxyHandler<LazyCallLogger> = {
  get(target, p, receiver) {
    const real = target.materialize();
    return Reflect.get(real, p, receiver === target.logger ? real : receiver);
  },
  set(target, p, value, receiver) {
    const real = target.materialize();
    return Reflect.set(real, p, value, receiver === target.logger ? real : receiver);
  },
  has: (target, p) => Reflect.has(target.materialize(), p),
  getPrototypeOf: (target) => Reflect.getPrototypeOf(target.materialize()),
};

/**
 * mergeable says whether a line written on `base` with the bindings merged
 * in front of its fields reads exactly like the same line on a child: true
 * for a pino logger whose formatters leave bindings alone and have no `log`
 * formatter (the defaults). Anything else gets a real child.
 */
function mergeable(base: Logger): boolean {
  const formatters = (base as unknown as Record<symbol, unknown>)[symbols.formattersSym] as
    | { bindings?: (b: object) => object; log?: unknown }
    | undefined;
  if (formatters === undefined || formatters.log !== undefined) return false;
  const probe = {};
  try {
    return formatters.bindings === undefined || formatters.bindings(probe) === probe;
  } catch {
    return false;
  }
}
