import {
  type AuthorizationPolicy,
  type AuthorizationPolicyOptions,
  createAuthorizationPolicy,
  isAuthorizationPolicy,
} from "./authorization-policy.js";

/**
 * AuthorizationSource hands out the policy in force. The authorization
 * interceptor reads it once per call, so one call is decided by one whole
 * policy however often the policy is replaced.
 */
export interface AuthorizationSource {
  /** current returns the policy in force now. */
  current(): AuthorizationPolicy;
}

/**
 * AuthorizationHolder is an AuthorizationSource replaced through an API:
 * `set` compiles the new policy first and swaps it in whole, so a bad policy
 * throws and leaves the old one in force.
 */
export interface AuthorizationHolder extends AuthorizationSource {
  /** set replaces the policy atomically; it throws (TypeError/RangeError) and keeps the old one when `next` is bad. */
  set(next: AuthorizationPolicy | AuthorizationPolicyOptions): AuthorizationPolicy;
  /** version counts the policies set, starting at 1 for the initial one. */
  readonly version: number;
}

/**
 * AuthorizationOption is what the server's `authorization` option takes: the
 * policy's rules (compiled when the server is built), a compiled policy, or a
 * source that can change (`createAuthorizationHolder`,
 * `createAuthorizationFileSource`).
 */
export type AuthorizationOption =
  | AuthorizationPolicyOptions
  | AuthorizationPolicy
  | AuthorizationSource;

/** toPolicy compiles options, passing compiled policies through. */
export function toPolicy(
  value: AuthorizationPolicy | AuthorizationPolicyOptions,
): AuthorizationPolicy {
  return isAuthorizationPolicy(value) ? value : createAuthorizationPolicy(value);
}

/** createAuthorizationHolder returns a holder whose policy is replaced with `set`. */
export function createAuthorizationHolder(
  initial: AuthorizationPolicy | AuthorizationPolicyOptions,
): AuthorizationHolder {
  let policy = toPolicy(initial);
  let version = 1;
  return {
    current: () => policy,
    set(next) {
      const compiled = toPolicy(next);
      policy = compiled;
      version++;
      return compiled;
    },
    get version() {
      return version;
    },
  };
}

/**
 * toAuthorizationSource turns the `authorization` option into a source,
 * compiling rules now so that a bad policy fails when the server is built.
 */
export function toAuthorizationSource(option: AuthorizationOption): AuthorizationSource {
  if (isSource(option)) return option;
  const policy = toPolicy(option);
  return { current: () => policy };
}

function isSource(value: unknown): value is AuthorizationSource {
  return (
    typeof value === "object" &&
    value !== null &&
    !isAuthorizationPolicy(value) &&
    typeof (value as { current?: unknown }).current === "function"
  );
}
