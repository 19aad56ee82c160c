/**
 * MirrorPolicyOptions say which calls are mirrored and how many may be in
 * flight; defaults in MIRROR_POLICY_DEFAULTS.
 */
export interface MirrorPolicyOptions {
  /**
   * share is the fraction (0..1) of unary calls mirrored, for methods not in
   * `methods`; default 1, every call (as Envoy's `runtime_fraction` when
   * unset). Use 0 with `methods` to mirror only some methods.
   */
  readonly share?: number;
  /**
   * methods overrides `share` per method: keys are `package.Service/Method`
   * or `package.Service/*` (every method of the service), values 0..1. An
   * exact method wins over its service's `/*`.
   */
  readonly methods?: Readonly<Record<string, number>>;
  /**
   * maxInFlight bounds the mirrored calls outstanding at once; a sampled call
   * past it is dropped (not sent) and counted. Default 16: enough for a
   * healthy shadow at a few thousand calls/s, small enough that a stalled one
   * holds at most 16 requests and their buffers.
   */
  readonly maxInFlight?: number;
  /**
   * timeoutMs is each mirrored call's own deadline, independent of the
   * primary's (the primary finishing does not end its mirror); default 1_000.
   */
  readonly timeoutMs?: number;
  /** random draws the sample in [0, 1); default Math.random. Inject one for tests. */
  readonly random?: () => number;
}

/** MIRROR_POLICY_DEFAULTS are the defaults documented on MirrorPolicyOptions. */
export const MIRROR_POLICY_DEFAULTS = Object.freeze({
  share: 1,
  maxInFlight: 16,
  // A shadow slower than a second is as good as down for a comparison of
  // answers, and a short deadline frees in-flight slots for fresh samples.
  timeoutMs: 1_000,
});

/** MirrorPolicy is a validated, immutable mirror policy. */
export interface MirrorPolicy {
  readonly share: number;
  /** methods holds the per-method and per-service (`pkg.Service/*`) shares. */
  readonly methods: ReadonlyMap<string, number>;
  readonly maxInFlight: number;
  readonly timeoutMs: number;
  readonly random: () => number;
}

/**
 * MirrorDecision says what becomes of one call: `send` a mirror, `skip` it
 * (not sampled, or a stream: not counted), or `drop` it (sampled, but
 * maxInFlight mirrors are outstanding: counted).
 */
export type MirrorDecision =
  | { readonly action: "send" }
  | { readonly action: "skip"; readonly reason: "not-sampled" | "stream" }
  | { readonly action: "drop"; readonly reason: "in-flight-limit" };

/** MirrorCall is what decideMirror needs to know of a call. */
export interface MirrorCall {
  /** method is `package.Service/Method`. */
  readonly method: string;
  readonly stream: boolean;
}

const METHOD_KEY = /^[^/\s]+\/[^/\s]+$/;

/** createMirrorPolicy validates options (RangeError/TypeError naming the bad value) and fills defaults. */
export function createMirrorPolicy(options: MirrorPolicyOptions = {}): MirrorPolicy {
  const share = options.share ?? MIRROR_POLICY_DEFAULTS.share;
  checkShare("share", share);
  const methods = new Map<string, number>();
  if (options.methods !== undefined) {
    if (typeof options.methods !== "object" || options.methods === null) {
      throw new TypeError('methods must be an object { "package.Service/Method": share }');
    }
    for (const [name, value] of Object.entries(options.methods)) {
      const key = name.startsWith("/") ? name.slice(1) : name;
      if (!METHOD_KEY.test(key)) {
        throw new RangeError(
          `methods: ${JSON.stringify(name)} must be "package.Service/Method" or "package.Service/*"`,
        );
      }
      checkShare(`methods[${JSON.stringify(name)}]`, value);
      methods.set(key, value);
    }
  }
  const maxInFlight = options.maxInFlight ?? MIRROR_POLICY_DEFAULTS.maxInFlight;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
    throw new RangeError(`maxInFlight ${maxInFlight} must be an integer >= 1`);
  }
  const timeoutMs = options.timeoutMs ?? MIRROR_POLICY_DEFAULTS.timeoutMs;
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`timeoutMs ${timeoutMs} must be a finite number > 0`);
  }
  const random = options.random ?? Math.random;
  if (typeof random !== "function") {
    throw new TypeError("random must be a function () => number in [0, 1)");
  }
  return Object.freeze({ share, methods, maxInFlight, timeoutMs, random });
}

/** mirrorShareOf is the share that applies to `method` (`package.Service/Method`). */
export function mirrorShareOf(policy: MirrorPolicy, method: string): number {
  const exact = policy.methods.get(method);
  if (exact !== undefined) return exact;
  const slash = method.lastIndexOf("/");
  return policy.methods.get(`${method.slice(0, slash)}/*`) ?? policy.share;
}

/**
 * decideMirror decides one call, given the mirrors now in flight and a draw
 * in [0, 1) (the caller draws it, so this stays pure). Sampling comes first:
 * only a sampled call that finds the bound full is a drop.
 */
export function decideMirror(
  policy: MirrorPolicy,
  call: MirrorCall,
  inFlight: number,
  draw: number,
): MirrorDecision {
  if (call.stream) return SKIP_STREAM;
  if (!(draw < mirrorShareOf(policy, call.method))) return SKIP_NOT_SAMPLED;
  if (inFlight >= policy.maxInFlight) return DROP;
  return SEND;
}

const SEND: MirrorDecision = Object.freeze({ action: "send" });
const SKIP_STREAM: MirrorDecision = Object.freeze({ action: "skip", reason: "stream" });
const SKIP_NOT_SAMPLED: MirrorDecision = Object.freeze({ action: "skip", reason: "not-sampled" });
const DROP: MirrorDecision = Object.freeze({ action: "drop", reason: "in-flight-limit" });

function checkShare(name: string, v: unknown): void {
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
    throw new RangeError(`${name} ${String(v)} must be a number in 0..1`);
  }
}
