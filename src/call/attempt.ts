import { type ContextKey, type ContextValues, createContextKey } from "@connectrpc/connect";

/**
 * Attempt is one try at a logical call: an immutable record the retry step
 * creates per attempt (hedges included) and hands down the per-attempt part
 * of the chain as the context value `attemptKey`. Hedges of one call run at
 * once, so nothing about an attempt lives on the shared MeshCall.
 */
export interface Attempt {
  /** number is 1-based: the first attempt is 1, retries and hedges count up. */
  readonly number: number;
  /**
   * deadlineAt is when this attempt must end on the transport's clock: the
   * call's deadline, or earlier with a per-attempt timeout; undefined: none.
   */
  readonly deadlineAt: number | undefined;
  /** avoid lists endpoints to pass over while others are ready (failed attempts, hedges in flight). */
  readonly avoid: readonly string[];
  /**
   * picked is the attempt's feedback hook, as grpc-go's PickResult.Done: the
   * attempt step calls it once with the endpoint it sends the attempt to,
   * before sending. Wrappers chain it (withPicked), never replace it.
   */
  picked(endpoint: string): void;
}

/** AttemptInit are the fields of createAttempt; absent ones take their neutral value. */
export interface AttemptInit {
  readonly number: number;
  readonly deadlineAt?: number | undefined;
  readonly avoid?: readonly string[] | undefined;
  readonly picked?: ((endpoint: string) => void) | undefined;
}

const NO_ENDPOINTS: readonly string[] = Object.freeze([]);
const NOOP = () => {};

/** createAttempt builds a frozen Attempt; the avoid list is copied. */
export function createAttempt(init: AttemptInit): Attempt {
  if (!Number.isInteger(init.number) || init.number < 1) {
    throw new RangeError(`attempt number ${init.number} must be an integer >= 1`);
  }
  return Object.freeze({
    number: init.number,
    deadlineAt: init.deadlineAt,
    avoid:
      init.avoid === undefined || init.avoid.length === 0
        ? NO_ENDPOINTS
        : Object.freeze([...init.avoid]),
    picked: init.picked ?? NOOP,
  });
}

/**
 * withPicked returns the same attempt whose `picked` runs the original hook,
 * then `next`: an observer learns the endpoint without cutting others out.
 */
export function withPicked(attempt: Attempt, next: (endpoint: string) => void): Attempt {
  return Object.freeze({
    ...attempt,
    picked(endpoint: string) {
      try {
        attempt.picked(endpoint);
      } finally {
        next(endpoint);
      }
    },
  });
}

/** attemptKey is the Connect context key of the attempt in flight. */
export const attemptKey = createContextKey<Attempt | undefined>(undefined, {
  description: "connect-mesh attempt",
});

/**
 * MeshCallOutcome is what a MeshCall learns once the call settled: the
 * attempt whose result became the call's, and the endpoint that served it.
 */
export interface MeshCallOutcome {
  readonly attempt: number;
  readonly endpoint: string | undefined;
}

/**
 * callOutcomeKey holds the writer of the MeshCall's outcome, set by the
 * transport; the retry step calls it with the deciding attempt (the attempt
 * step, when nothing retries). @private
 */
export const callOutcomeKey = createContextKey<((outcome: MeshCallOutcome) => void) | undefined>(
  undefined,
  { description: "connect-mesh call outcome" },
);

/**
 * withAttempt returns context values that read `attempt` under attemptKey and
 * share everything else with `parent` (reads and writes): each hedge sees its
 * own attempt, while per-call values (trace context, counters) stay common.
 */
export function withAttempt(parent: ContextValues, attempt: Attempt): ContextValues {
  return {
    get<T>(key: ContextKey<T>): T {
      return key.id === attemptKey.id ? (attempt as T) : parent.get(key);
    },
    set<T>(key: ContextKey<T>, value: T) {
      if (key.id === attemptKey.id) {
        throw new TypeError("an attempt's context values hold a fixed attempt");
      }
      parent.set(key, value);
      return this;
    },
    delete(key) {
      if (key.id !== attemptKey.id) parent.delete(key);
      return this;
    },
  };
}
