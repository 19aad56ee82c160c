import { createContextKey } from "@connectrpc/connect";

/**
 * idempotencyTransactionKey holds, in a keyed call's context values, the
 * transaction a transactional idempotency store opened for it (the Postgres
 * store: a `pg` client inside BEGIN that holds the key's lock). The handler
 * writes through it so its writes commit with the stored outcome, or not at
 * all. Undefined for calls without a key, with a non-transactional store, or
 * run unprotected (`failOpen` after a store failure). Prefer the typed
 * accessor of the store, e.g. `currentIdempotencyTransaction(ctx)`.
 */
export const idempotencyTransactionKey = createContextKey<unknown>(undefined, {
  description: "connect-mesh idempotency transaction",
});
