import { randomUUID } from "node:crypto";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { IDEMPOTENCY_KEY_HEADER } from "./idempotency-key.js";

/**
 * idempotencyKeyKey is the Connect context key through which a caller supplies
 * the idempotency key of one call:
 * `client.createOrder(req, { contextValues: createContextValues().set(idempotencyKeyKey, key) })`.
 * Setting the `idempotency-key` header in the call options works too and wins.
 */
export const idempotencyKeyKey = createContextKey<string | undefined>(undefined, {
  description: "connect-mesh idempotency key",
});

/**
 * IdempotencyKeyMode says which calls get a generated key:
 * - `auto`: every unary call to a method not marked NO_SIDE_EFFECTS;
 * - `caller-only`: none; only keys the caller supplies are sent;
 * - `{ methods }`: unary calls to the listed `package.Service/Method`s (not
 *   NO_SIDE_EFFECTS ones).
 */
export type IdempotencyKeyMode = "auto" | "caller-only" | { readonly methods: readonly string[] };

/** IdempotencyKeyInterceptorOptions configures createIdempotencyKeyInterceptor. */
export interface IdempotencyKeyInterceptorOptions {
  /** mode says which calls get a generated key; default "auto". */
  readonly mode?: IdempotencyKeyMode;
  /** generateKey makes a key; default crypto.randomUUID (v4). */
  readonly generateKey?: () => string;
}

/**
 * createIdempotencyKeyInterceptor gives unary calls with side effects an
 * `idempotency-key` header, once per logical call. It belongs outside the
 * retry loop (slot "idempotency-key" of CLIENT_INTERCEPTOR_ORDER): attempts
 * and hedges share the request's header object, so they all carry the same
 * key and the server runs the handler once.
 *
 * A key the caller supplies wins: an `idempotency-key` header already on the
 * request, else the context value `idempotencyKeyKey`. Streaming calls are
 * left alone (the server rejects keys on streams), and so are methods marked
 * NO_SIDE_EFFECTS, which are safe to repeat anyway.
 */
export function createIdempotencyKeyInterceptor(
  options: IdempotencyKeyInterceptorOptions = {},
): Interceptor {
  const mode = options.mode ?? "auto";
  const generateKey = options.generateKey ?? randomUUID;
  if (typeof generateKey !== "function") {
    throw new TypeError("generateKey must be a function () => string");
  }
  let listed: ReadonlySet<string> | undefined;
  if (typeof mode === "object" && mode !== null) {
    if (!Array.isArray(mode.methods)) {
      throw new TypeError('mode.methods must be an array of "package.Service/Method"');
    }
    listed = new Set(
      mode.methods.map((m) => {
        const name = typeof m === "string" && m.startsWith("/") ? m.slice(1) : m;
        if (typeof name !== "string" || !/^[^/]+\/[^/]+$/.test(name)) {
          throw new RangeError(
            `mode.methods: ${JSON.stringify(m)} must be "package.Service/Method"`,
          );
        }
        return name;
      }),
    );
  } else if (mode !== "auto" && mode !== "caller-only") {
    throw new RangeError(
      `mode ${JSON.stringify(mode)} must be "auto", "caller-only" or { methods: [...] }`,
    );
  }
  // Not async: the call's own promise is returned as it is, one promise less
  // per call (each one runs the call scope's async hooks).
  return (next) => (req) => {
    if (
      req.stream ||
      req.header.has(IDEMPOTENCY_KEY_HEADER) ||
      req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS
    ) {
      return next(req);
    }
    try {
      const supplied = req.contextValues.get(idempotencyKeyKey);
      if (supplied !== undefined) {
        req.header.set(IDEMPOTENCY_KEY_HEADER, supplied);
      } else if (
        mode === "auto" ||
        listed?.has(`${req.method.parent.typeName}/${req.method.name}`) === true
      ) {
        req.header.set(IDEMPOTENCY_KEY_HEADER, generateKey());
      }
    } catch (e) {
      // A key no header can carry, or a generateKey that throws: the call
      // fails as it did when this was async, with a rejection.
      return Promise.reject(e);
    }
    return next(req);
  };
}
