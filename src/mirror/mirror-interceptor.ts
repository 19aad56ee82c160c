import { setMaxListeners } from "node:events";
import {
  Code,
  ConnectError,
  createContextValues,
  type Interceptor,
  type Transport,
  type UnaryRequest,
} from "@connectrpc/connect";
import { runOutsideCallScope } from "../call/call-scope.js";
import { IDEMPOTENCY_KEY_HEADER, MIRROR_HEADER } from "../call/headers.js";
import { deadlineSignal } from "../call/signals.js";
import { type Clock, systemClock } from "../clock.js";
import { idempotencyKeyKey } from "../idempotency/client-key-interceptor.js";
import type { MirrorEvent } from "./mirror-events.js";
import {
  createMirrorPolicy,
  decideMirror,
  type MirrorPolicy,
  type MirrorPolicyOptions,
} from "./mirror-policy.js";

/**
 * MirrorOptions configure request mirroring (transport option `mirror`):
 * where the copies go, and the policy (share, per-method shares, in-flight
 * bound, deadline).
 */
export interface MirrorOptions extends MirrorPolicyOptions {
  /**
   * shadow receives the copies: a target string (the mesh transport builds
   * its own transport to it, with the primary's TLS and discovery settings,
   * no retries, no generated idempotency keys, no call logs, and closes it
   * with itself), or any Connect `Transport` you own and close.
   */
  readonly shadow: Transport | string;
}

/** MirrorDeps are what the mesh transport hands to createMirror. */
export interface MirrorDeps {
  /** target is the primary's target, for events. */
  readonly target: string;
  /** openShadow builds the transport for a string `shadow`. */
  readonly openShadow?: (target: string) => Transport & { close?(): Promise<void> };
  readonly clock?: Clock;
  readonly onEvent?: (event: MirrorEvent) => void;
}

/** Mirror is the mirror interceptor (slot `mirror`) with its state. */
export interface Mirror {
  readonly interceptor: Interceptor;
  /** policy is the validated policy. */
  readonly policy: MirrorPolicy;
  /** inFlight counts the mirrored calls outstanding now. */
  inFlight(): number;
  /** close cancels mirrors in flight, sends no more, and closes a shadow it built. Idempotent. */
  close(): Promise<void>;
}

/**
 * createMirror copies a share of unary calls to a shadow, fire-and-forget
 * (Envoy's `request_mirror_policies`): the caller never waits for a mirror
 * and never sees its outcome, latency or errors.
 *
 * - The copy is the request as the application made it (headers the user
 *   interceptors set included; no traceparent or generated idempotency key,
 *   which later slots add) plus `x-mesh-mirror: 1`. A key the caller gave in
 *   `idempotencyKeyKey` goes along as the header; mesh servers keep marked
 *   calls' idempotency records apart from the primary's.
 * - It runs on its own deadline (`timeoutMs`) outside the call scope: the
 *   primary finishing or being cancelled does not cancel its mirror, and a
 *   mirror made inside a mesh handler does not inherit that handler's
 *   deadline. Closing the mirror (the transport) cancels mirrors in flight.
 * - At most `maxInFlight` mirrors are outstanding; past that a sampled call
 *   is dropped and counted (`mirror-dropped`), so a slow or stalled shadow
 *   costs a bounded amount of memory and work.
 * - Streaming calls are not mirrored (their messages are consumed once).
 */
export function createMirror(options: MirrorOptions, deps: MirrorDeps): Mirror {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("mirror must be an object { shadow, share?, ... }");
  }
  const { shadow: shadowOption, ...policyOptions } = options;
  const policy = createMirrorPolicy(policyOptions);
  let shadow: Transport & { close?(): Promise<void> };
  let owned = false;
  let shadowName: string;
  if (typeof shadowOption === "string") {
    if (shadowOption === "") throw new TypeError('mirror.shadow "" must be a non-empty target');
    if (deps.openShadow === undefined) {
      throw new TypeError("mirror.shadow must be a Transport here (no transport factory given)");
    }
    shadow = deps.openShadow(shadowOption);
    owned = true;
    shadowName = shadowOption;
  } else if (
    typeof shadowOption === "object" &&
    shadowOption !== null &&
    typeof shadowOption.unary === "function"
  ) {
    shadow = shadowOption;
    const named = (shadowOption as { target?: unknown }).target;
    shadowName = typeof named === "string" ? named : "transport";
  } else {
    throw new TypeError("mirror.shadow must be a target string or a Connect Transport");
  }
  const clock = deps.clock ?? systemClock;
  const closing = new AbortController();
  // Every mirror in flight listens to it: up to maxInFlight.
  setMaxListeners(0, closing.signal);
  const emit = (event: MirrorEvent) => {
    try {
      deps.onEvent?.(event);
    } catch {
      // A listener must not reach the caller's call.
    }
  };
  let inFlight = 0;

  async function send(req: UnaryRequest, method: string, header: Headers): Promise<void> {
    const link = deadlineSignal(clock, policy.timeoutMs, [closing.signal]);
    try {
      // Outside the call scope: a mesh shadow transport would otherwise tie
      // the mirror to the incoming call this one was made for.
      await runOutsideCallScope(() =>
        shadow.unary(
          req.method,
          link.signal,
          policy.timeoutMs,
          header,
          req.message,
          createContextValues(),
        ),
      );
    } catch (e) {
      const err = ConnectError.from(link.signal.aborted ? link.signal.reason : e, Code.Unknown);
      emit({
        type: "mirror-failed",
        target: deps.target,
        shadow: shadowName,
        method,
        code: err.code,
      });
    } finally {
      link.cleanup();
      inFlight--;
    }
  }

  const interceptor: Interceptor = (next) => (req) => {
    if (req.stream || closing.signal.aborted) return next(req);
    const method = `${req.method.parent.typeName}/${req.method.name}`;
    const decision = decideMirror(policy, { method, stream: false }, inFlight, policy.random());
    if (decision.action === "skip") return next(req);
    if (decision.action === "drop") {
      emit({
        type: "mirror-dropped",
        target: deps.target,
        shadow: shadowName,
        method,
        reason: decision.reason,
        maxInFlight: policy.maxInFlight,
      });
      return next(req);
    }
    // Copy the headers before the inner slots add theirs (trace, key).
    const header = new Headers(req.header);
    header.set(MIRROR_HEADER, "1");
    if (!header.has(IDEMPOTENCY_KEY_HEADER)) {
      const key = req.contextValues.get(idempotencyKeyKey);
      if (key !== undefined) header.set(IDEMPOTENCY_KEY_HEADER, key);
    }
    // The primary goes first: the mirror is built and sent on a later turn
    // of the event loop (setImmediate), after the primary's request has been
    // written, so the copy never delays the original. Its slot is taken now.
    const primary = next(req);
    inFlight++;
    emit({ type: "mirror-sent", target: deps.target, shadow: shadowName, method, inFlight });
    setImmediate(() => void send(req, method, header));
    return primary;
  };

  return {
    interceptor,
    policy,
    inFlight: () => inFlight,
    async close() {
      if (closing.signal.aborted) return;
      closing.abort(new ConnectError("the mirror was closed", Code.Canceled));
      if (owned) await shadow.close?.();
    },
  };
}
