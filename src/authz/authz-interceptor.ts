import { type Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { peerIdentityKey, principalOf } from "../call/peer-identity.js";
import { loggerKey } from "../observability/context-keys.js";
import { levelForCode } from "../observability/grpc-fields.js";
import type { AuthorizationDecision } from "./authorization-policy.js";
import { type AuthorizationOption, toAuthorizationSource } from "./authorization-source.js";

/** AuthorizationDecisionEvent reports one call's authorization decision. */
export interface AuthorizationDecisionEvent {
  /** type is `authz-allowed` or `authz-denied`. */
  readonly type: "authz-allowed" | "authz-denied";
  /** service is the called service, `pkg.Service`. */
  readonly service: string;
  /** method is the called method's name. */
  readonly method: string;
  /** principal is the caller's SPIFFE ID, undefined for a peer without identity. */
  readonly principal: string | undefined;
  /** rule is the rule that decided, undefined when the default did. */
  readonly rule: string | undefined;
  /** code is the denial's code (PERMISSION_DENIED or UNAUTHENTICATED). */
  readonly code: Code | undefined;
  /** reason says why, e.g. `denied by rule "no-legacy"`. */
  readonly reason: string;
}

/** AuthorizationInterceptorOptions configures createAuthorizationInterceptor. */
export interface AuthorizationInterceptorOptions {
  /** policy is the rules, a compiled policy, or a source that can change at run time. */
  readonly policy: AuthorizationOption;
  /** onDecision receives every decision (allowed and denied); default none. */
  readonly onDecision?: (event: AuthorizationDecisionEvent) => void;
}

/**
 * AuthorizationServerOption is the mesh server's `authorization` option: a
 * policy (rules, compiled, or a source that changes at run time), or
 * interceptor options when decisions should also be reported (`onDecision`).
 */
export type AuthorizationServerOption = AuthorizationOption | AuthorizationInterceptorOptions;

/**
 * authorizationInterceptorOptions reads the server's `authorization` option.
 * @private
 */
export function authorizationInterceptorOptions(
  option: AuthorizationServerOption,
): AuthorizationInterceptorOptions {
  return typeof option === "object" && option !== null && "policy" in option
    ? option
    : { policy: option };
}

/**
 * createAuthorizationInterceptor enforces an authorization policy on the
 * server, in the `authz` slot of SERVER_INTERCEPTOR_ORDER: after the call
 * scope opens and before rate limits, concurrency limits, user interceptors
 * and idempotency, so a denied call costs nothing below it and never claims
 * an idempotency key. The caller is the peer identity the server put in
 * `peerIdentityKey` (its SPIFFE ID is the principal). The policy in force is
 * read once per call, so a call is decided by one whole policy while it is
 * being replaced.
 *
 * A denial fails the call with the decision's code (PERMISSION_DENIED, or
 * UNAUTHENTICATED for a peer without identity when one is required) and a
 * message naming the rule. The decision is bound to the call's logger as
 * `authz.decision` (`allow`/`deny`) and `authz.rule`, so the call's
 * `finished call` line (and the handler's lines) carry it.
 */
export function createAuthorizationInterceptor(
  options: AuthorizationInterceptorOptions,
): Interceptor {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("createAuthorizationInterceptor: options must be an object");
  }
  if (options.onDecision !== undefined && typeof options.onDecision !== "function") {
    throw new TypeError("onDecision must be a function (event) => void");
  }
  const source = toAuthorizationSource(options.policy);
  const onDecision = options.onDecision;

  return (next) => async (req) => {
    const peer = req.contextValues.get(peerIdentityKey);
    const decision = source.current().decide({
      peer,
      service: req.service.typeName,
      method: req.method.name,
      header: req.header,
    });
    const principal = principalOf(peer);
    bindToCallLogger(req.contextValues.get(loggerKey), decision);
    if (onDecision !== undefined) {
      try {
        onDecision({
          type: decision.allowed ? "authz-allowed" : "authz-denied",
          service: req.service.typeName,
          method: req.method.name,
          principal,
          rule: decision.rule,
          code: decision.code,
          reason: decision.reason,
        });
      } catch {
        // A throwing listener must not decide the call.
      }
    }
    if (!decision.allowed) {
      const who = principal === undefined ? "" : ` from ${principal}`;
      throw new ConnectError(
        `${decision.reason} (${req.service.typeName}/${req.method.name}${who})`,
        decision.code,
      );
    }
    return next(req);
  };
}

type CallLogger = { isLevelEnabled(level: string): boolean; setBindings(b: object): void };

function bindToCallLogger(log: CallLogger | undefined, d: AuthorizationDecision): void {
  // Binding re-serializes the logger's fields: skip it when the call line is not written.
  if (log === undefined || !log.isLevelEnabled(d.allowed ? "info" : levelForCode(d.code))) return;
  log.setBindings(
    d.rule === undefined
      ? { "authz.decision": d.allowed ? "allow" : "deny" }
      : { "authz.decision": d.allowed ? "allow" : "deny", "authz.rule": d.rule },
  );
}
