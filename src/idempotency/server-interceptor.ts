import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  createContextKey,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { encodedRequestKey, encodedResponseKey } from "../call/encoded-response.js";
import { MIRROR_HEADER, RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { peerIdentityKey, principalOf as peerPrincipal } from "../call/peer-identity.js";
import { serverCallKey } from "../call/server-call.js";
import { abortableSleep } from "../call/signals.js";
import { BACKGROUND, type Clock, type ClockTimer, systemClock } from "../clock.js";
import { stripUndefined } from "../strip-undefined.js";
import { captureError, captureResponse } from "./capture-outcome.js";
import {
  ErrorInfoSchema,
  IDEMPOTENCY_ERROR_DOMAIN,
  type IdempotencyErrorReason,
} from "./error-info.js";
import type { IdempotencyCall, IdempotencyEvent } from "./events.js";
import { requestFingerprint } from "./fingerprint.js";
import { checkIdempotencyKey, IDEMPOTENCY_KEY_HEADER, keyDigest } from "./idempotency-key.js";
import {
  claimLeaseMs,
  DETERMINISTIC_ERROR_CODES,
  errorDisposition,
  nextPollMs,
  renewalLeaseMs,
} from "./idempotency-policy.js";
import { idempotencyTransactionKey } from "./idempotency-transaction.js";
import { createMemoryIdempotencyStore } from "./memory-store.js";
import { type IdempotencyOutcome, outcomeSize } from "./outcome.js";
import { replayOutcome } from "./replay-outcome.js";
import { type ClaimResult, formatRecordKey, type IdempotencyStore, syncStoreOf } from "./store.js";

/**
 * idempotencyHandledKey marks a server call that an idempotency interceptor
 * has already taken: any other idempotency interceptor further in passes it
 * through. A mesh server installs one in its `idempotency` slot by default;
 * one also given in `interceptors` (the way it was installed before it was
 * built in) runs first and decides alone, with its own store and principal.
 * Two layers would each claim the key, and the inner one, knowing nothing of
 * the outer one's principal, would replay one caller's outcome to another.
 */
const idempotencyHandledKey = createContextKey<boolean>(false, {
  description: "connect-mesh idempotency handled",
});

/** IdempotencyMethodOptions are per-method settings of the idempotency interceptor. */
export interface IdempotencyMethodOptions {
  /** required answers INVALID_ARGUMENT to calls without an idempotency-key; default false. */
  readonly required?: boolean;
}

/**
 * IdempotencyInterceptorOptions configures createIdempotencyInterceptor.
 * Defaults are in IDEMPOTENCY_DEFAULTS.
 */
export interface IdempotencyInterceptorOptions {
  /** store keeps claims and outcomes; default a memory store (one replica only). */
  readonly store?: IdempotencyStore;
  /**
   * principal names who is calling, so that two callers using the same key
   * never see each other's outcomes; default the caller's verified SPIFFE ID
   * when the server runs mutual TLS (`peerIdentityKey`), else "anonymous". It
   * runs after the user interceptors (auth), so it can read what they set in
   * `req.contextValues`.
   */
  readonly principal?: (req: UnaryRequest) => string | Promise<string>;
  /** methods holds per-method options, keyed by `package.Service/Method`. */
  readonly methods?: Readonly<Record<string, IdempotencyMethodOptions>>;
  /**
   * onConcurrent says what a duplicate arriving while the first call runs
   * gets: `wait` for the outcome, up to its own deadline (default), or
   * `abort`: ABORTED with ErrorInfo reason IDEMPOTENCY_KEY_IN_USE and a
   * `grpc-retry-pushback-ms` trailer.
   */
  readonly onConcurrent?: "wait" | "abort";
  /** retryPushbackMs is the pushback sent with IDEMPOTENCY_KEY_IN_USE; default 1_000. */
  readonly retryPushbackMs?: number;
  /** maxLeaseMs caps an in-progress claim's lease (the deadline, when shorter, sets it); default 60_000. */
  readonly maxLeaseMs?: number;
  /** leaseMarginMs is added to every lease; default 1_000. */
  readonly leaseMarginMs?: number;
  /**
   * claimLeaseMs is the short lease of a claim while its owner's handler runs,
   * with a store that can renew (file, Redis); default 2_000. The owner
   * renews it every `claimRenewMs` (heartbeat) up to the call's deadline
   * (capped by maxLeaseMs) plus leaseMarginMs, so a duplicate takes a
   * crashed owner's key over within about one claimLeaseMs. Stores without
   * `renew`, and `sameProcess` ones (memory), hold the whole deadline-based
   * lease instead.
   */
  readonly claimLeaseMs?: number;
  /** claimRenewMs is the heartbeat period; default 500; must be < claimLeaseMs. */
  readonly claimRenewMs?: number;
  /** ttlMs is how long completed outcomes are kept for replay; default 24 h. */
  readonly ttlMs?: number;
  /** maxStoredBytes is the largest outcome stored (see outcomeSize); default 1 MiB. */
  readonly maxStoredBytes?: number;
  /**
   * onTooLarge says what a completed call with a larger outcome leaves: `mark`
   * (default) stores a marker, so duplicates get FAILED_PRECONDITION with
   * reason IDEMPOTENCY_OUTCOME_NOT_STORED and the handler never runs twice;
   * `release` frees the key, so a duplicate runs the handler again.
   */
  readonly onTooLarge?: "mark" | "release";
  /** storedErrorCodes are the error codes stored and replayed; default DETERMINISTIC_ERROR_CODES. */
  readonly storedErrorCodes?: readonly Code[];
  /**
   * failOpen runs the handler unprotected when the store fails; default false:
   * the call fails with UNAVAILABLE and the handler does not run.
   */
  readonly failOpen?: boolean;
  /** minPollMs and maxPollMs bound how often a waiting duplicate checks the store; defaults 5 and 100. */
  readonly minPollMs?: number;
  readonly maxPollMs?: number;
  /** clock times the waits between polls. */
  readonly clock?: Clock;
  /** onEvent receives IdempotencyEvents; it must not throw (errors are swallowed). */
  readonly onEvent?: (event: IdempotencyEvent) => void;
  /**
   * shareEncodedResponse hands the response bytes it stores to the lean gRPC
   * handler (encodedResponseKey), which then does not encode the message
   * again. Only for a chain where nothing outside this interceptor changes
   * response messages in place; the mesh server sets it when it has no user
   * interceptors. The same condition lets it hash the request bytes the
   * handler received (encodedRequestKey) rather than encode the message.
   * Default false.
   * @private
   */
  readonly shareEncodedResponse?: boolean;
}

type IdempotencyDefaults = Required<
  Pick<
    IdempotencyInterceptorOptions,
    | "onConcurrent"
    | "retryPushbackMs"
    | "maxLeaseMs"
    | "leaseMarginMs"
    | "claimLeaseMs"
    | "claimRenewMs"
    | "ttlMs"
    | "maxStoredBytes"
    | "onTooLarge"
    | "storedErrorCodes"
    | "failOpen"
    | "minPollMs"
    | "maxPollMs"
  >
>;

/** IDEMPOTENCY_DEFAULTS are the defaults documented on IdempotencyInterceptorOptions. */
export const IDEMPOTENCY_DEFAULTS: Readonly<IdempotencyDefaults> = Object.freeze({
  onConcurrent: "wait",
  retryPushbackMs: 1_000,
  // A handler running longer than a minute without a deadline is rare; past
  // that, a crashed owner's key is taken over rather than blocked for long.
  maxLeaseMs: 60_000,
  // Covers the handler's return, the store round trip and clock skew between
  // replicas (Redis expires keys on its own clock).
  leaseMarginMs: 1_000,
  // A lease of 4 heartbeats survives 3 lost or late renewals (a GC pause, a
  // busy event loop, a Redis blip) while a dead owner's key is free within 2 s.
  claimLeaseMs: 2_000,
  claimRenewMs: 500,
  ttlMs: 24 * 60 * 60 * 1_000,
  maxStoredBytes: 1024 * 1024,
  onTooLarge: "mark",
  storedErrorCodes: DETERMINISTIC_ERROR_CODES,
  failOpen: false,
  // Local Redis answers in ~0.1 ms; 5 ms first, doubling to 100 ms, keeps a
  // waiting duplicate's extra latency small without hammering the store.
  minPollMs: 5,
  maxPollMs: 100,
});

/**
 * createIdempotencyInterceptor makes keyed unary calls run at most once per
 * (principal, method, key): the first call claims the key and runs the
 * handler; duplicates get the stored outcome (same message bytes, headers,
 * trailers, or the same error) with `idempotency-replayed: true`.
 *
 * - Applies to unary methods whose `idempotency_level` is not NO_SIDE_EFFECTS,
 *   when the request has an `idempotency-key` header (1-255 printable ASCII
 *   characters, one value). A key on a streaming call is INVALID_ARGUMENT:
 *   streams cannot be replayed.
 * - The same key with another request payload (SHA-256 of method and request
 *   bytes) is FAILED_PRECONDITION with ErrorInfo reason IDEMPOTENCY_KEY_REUSED.
 * - OK outcomes and deterministic errors are stored for `ttlMs`; transient
 *   errors release the key so a retry runs the handler.
 * - A claim's lease is short (`claimLeaseMs`) and renewed by its owner every
 *   `claimRenewMs` while the handler runs, up to the call's remaining
 *   deadline (capped) plus a margin; a claim whose owner died is taken over
 *   when it expires, about one claimLeaseMs later. With a store that cannot
 *   renew, or one in this process (memory), the lease is that whole
 *   deadline. Handlers should honour `ctx.signal`: one that runs past its
 *   lease may run twice (not with a transactional store: its writes then do
 *   not commit).
 * - With a transactional store (Postgres) the handler gets the transaction
 *   in `idempotencyTransactionKey`; its writes commit with the outcome, and a
 *   commit that fails fails the call with ABORTED (and a retry pushback).
 * - A store that fails makes the call fail with UNAVAILABLE before the handler
 *   runs, unless `failOpen`.
 * - A mirrored call (header `x-mesh-mirror`) is de-duplicated in its own
 *   namespace: it never claims, waits on or replays the primary's record of
 *   the same key, so a shadow sharing the store cannot make the primary a
 *   replay, and the primary's de-duplication is unchanged.
 *
 * Place it after authentication (the principal) and before fault injection;
 * see SERVER_INTERCEPTOR_ORDER. Mesh servers install one there by default
 * (option `idempotency`). When several are chained, the outermost one
 * handles each call and the others pass it through.
 */
export function createIdempotencyInterceptor(
  options: IdempotencyInterceptorOptions = {},
): Interceptor {
  const opts = { ...IDEMPOTENCY_DEFAULTS, ...stripUndefined(options) };
  validateOptions(opts);
  const store = opts.store ?? createMemoryIdempotencyStore();
  const principalOf =
    opts.principal ??
    ((req: UnaryRequest) => peerPrincipal(req.contextValues.get(peerIdentityKey)) ?? "anonymous");
  const methods = new Map(Object.entries(opts.methods ?? {}));
  const storedCodes = new Set(opts.storedErrorCodes);
  const clock = opts.clock ?? systemClock;
  // Short leases renewed by a heartbeat, for stores other processes share.
  const renew = store.sameProcess === true ? undefined : store.renew?.bind(store);
  const sync = syncStoreOf(store);
  const heartbeats = renew !== undefined;
  // emit reports an event about `call`, completing the fields object its
  // caller built for it (a fresh literal at every call site). Spreading it
  // into a new object with a lazy keyDigest getter cost ~1.5 µs per event,
  // two events a call; the one-shot SHA-256 of the key is ~0.2 µs, once a call.
  const emit = (fields: EventFields, call: KeyedCallInfo) => {
    const onEvent = opts.onEvent;
    if (onEvent === undefined) return;
    const event = fields as Record<string, unknown>;
    event.method = call.method;
    event.principal = call.principal;
    event.keyDigest = digestOf(call);
    try {
      onEvent(event as unknown as IdempotencyEvent);
    } catch {
      // An event listener must not change the outcome of a call.
    }
  };

  // Store operations answer at once with the memory store (its synchronous
  // face) and with a promise otherwise: each step below takes either, so a
  // keyed call on the memory store costs one promise (the handler's `then`)
  // rather than one per await, each of which runs the call scope's async hooks.
  function keyedCall(
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
    req: UnaryRequest,
    key: string,
    method: string,
    mirrored: boolean,
  ): Promise<UnaryResponse> {
    // The default principal, and most custom ones, answer at once.
    const named = principalOf(req);
    if (typeof named === "string") return keyedFor(next, req, named, key, method, mirrored);
    return Promise.resolve(named).then((principal) =>
      keyedFor(next, req, principal, key, method, mirrored),
    );
  }

  function keyedFor(
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
    req: UnaryRequest,
    principal: unknown,
    key: string,
    method: string,
    mirrored: boolean,
  ): Promise<UnaryResponse> {
    if (typeof principal !== "string") {
      throw new ConnectError("idempotency principal must be a string", Code.Internal);
    }
    const call: KeyedCallInfo = { method, principal, key, digest: undefined };
    // A mirrored copy (x-mesh-mirror) is de-duplicated apart from the primary:
    // a shadow sharing the store must neither claim the primary's key nor make
    // the primary a replay of its own answer. No method name holds a space.
    const recordKey = formatRecordKey(principal, mirrored ? `${method} mirror` : method, key);
    const fingerprint = requestFingerprint(req.method, req.message, receivedBytes(req));
    const attempt = (pollMs: number | undefined): Promise<UnaryResponse> => {
      const remainingMs = req.contextValues.get(serverCallKey)?.timeoutMs();
      const horizonMs = claimLeaseMs(remainingMs, opts.maxLeaseMs, opts.leaseMarginMs);
      const leaseMs = heartbeats ? Math.min(opts.claimLeaseMs, horizonMs) : horizonMs;
      const claimFailed = (e: unknown): Promise<UnaryResponse> => {
        emit(
          {
            type: "store-error",
            operation: "claim",
            error: asError(e),
            failOpen: opts.failOpen,
          },
          call,
        );
        if (opts.failOpen) return next(req);
        throw new ConnectError(
          "idempotency store is unavailable; the call was not run",
          Code.Unavailable,
          undefined,
          undefined,
          e,
        );
      };
      const decide = (claim: ClaimResult): Promise<UnaryResponse> => {
        switch (claim.state) {
          case "claimed":
            emit({ type: "claimed", leaseMs }, call);
            if (claim.transaction !== undefined) {
              req.contextValues.set(idempotencyTransactionKey, claim.transaction);
            }
            return runClaimed(next, req, call, recordKey, claim.token, horizonMs);
          case "completed":
            if (claim.record.fingerprint !== fingerprint) throw keyReused(call);
            emit({ type: "replayed", code: replayCode(claim.record.outcome) }, call);
            return Promise.resolve(replayOutcome(req, claim.record.outcome));
          case "in-progress": {
            if (claim.fingerprint !== undefined && claim.fingerprint !== fingerprint) {
              throw keyReused(call);
            }
            if (opts.onConcurrent === "abort") {
              emit({ type: "conflict", reason: "in-use" }, call);
              throw idempotencyError(
                "a call with this idempotency-key is in progress",
                Code.Aborted,
                "IDEMPOTENCY_KEY_IN_USE",
                { [RETRY_PUSHBACK_HEADER]: String(opts.retryPushbackMs) },
              );
            }
            if (pollMs === undefined) emit({ type: "waiting" }, call);
            const waitMs = nextPollMs(
              pollMs,
              claim.leaseRemainingMs,
              opts.minPollMs,
              opts.maxPollMs,
            );
            return abortableSleep(clock, waitMs, req.signal).then(() => attempt(waitMs));
          }
        }
      };
      let claim: ClaimResult;
      try {
        if (sync === undefined) {
          // Promise.resolve: a store answering with a thenable or a value works too.
          return Promise.resolve(store.claim(recordKey, fingerprint, leaseMs)).then(
            decide,
            claimFailed,
          );
        }
        claim = sync.claim(recordKey, fingerprint, leaseMs);
      } catch (e) {
        return claimFailed(e);
      }
      return decide(claim);
    };
    return attempt(undefined);
  }

  // The bytes the lean gRPC handler decoded this very message from, when
  // nothing further out could have changed it in place.
  function receivedBytes(req: UnaryRequest): Uint8Array | undefined {
    if (opts.shareEncodedResponse !== true) return undefined;
    const received = req.contextValues.get(encodedRequestKey);
    return received !== undefined && received.message === req.message ? received.bytes : undefined;
  }

  function keyReused(call: KeyedCallInfo): ConnectError {
    emit({ type: "conflict", reason: "reused" }, call);
    return idempotencyError(
      `idempotency-key (sha256 ${digestOf(call)}) was used before with a different request`,
      Code.FailedPrecondition,
      "IDEMPOTENCY_KEY_REUSED",
    );
  }

  function runClaimed(
    next: (req: UnaryRequest) => Promise<UnaryResponse>,
    req: UnaryRequest,
    call: KeyedCallInfo,
    recordKey: string,
    token: string,
    horizonMs: number,
  ): Promise<UnaryResponse> {
    const stopHeartbeat = startHeartbeat(call, recordKey, token, horizonMs);
    let running: Promise<UnaryResponse>;
    try {
      running = Promise.resolve(next(req));
    } catch (e) {
      running = Promise.reject(e);
    }
    return running.then(
      (res) => {
        stopHeartbeat();
        const stored = storeResponse(req, res, call, recordKey, token);
        return stored === undefined ? res : stored.then(() => res);
      },
      (e: unknown) => {
        stopHeartbeat();
        const err = ConnectError.from(e);
        let stored: void | Promise<void>;
        if (errorDisposition(err.code, storedCodes) === "store") {
          stored = finish(call, recordKey, token, captureError(err), err.code);
        } else {
          stored = release(call, recordKey, token, err.code);
        }
        if (stored === undefined) throw e;
        return stored.then(() => {
          throw e;
        });
      },
    );
  }

  // storeResponse stores a successful call's outcome (or a marker when it is
  // too large); undefined when done at once.
  function storeResponse(
    req: UnaryRequest,
    res: UnaryResponse,
    call: KeyedCallInfo,
    recordKey: string,
    token: string,
  ): void | Promise<void> {
    const outcome = captureResponse(res);
    if (opts.shareEncodedResponse === true && outcome.kind === "ok") {
      req.contextValues.set(encodedResponseKey, { message: res.message, bytes: outcome.message });
    }
    const bytes = outcomeSize(outcome);
    if (bytes > opts.maxStoredBytes) {
      emit(
        {
          type: "too-large",
          bytes,
          maxBytes: opts.maxStoredBytes,
          action: opts.onTooLarge,
        },
        call,
      );
      // A transactional store's release would roll back the writes of a call
      // that succeeded: it always keeps a marker.
      if (opts.onTooLarge === "release" && store.transactional !== true) {
        return release(call, recordKey, token);
      }
      return finish(call, recordKey, token, { kind: "unstored", bytes }, undefined);
    }
    return finish(call, recordKey, token, outcome, undefined, bytes);
  }

  // startHeartbeat renews the claim every claimRenewMs until stopped, the
  // horizon passes, or the claim is found lost. A renewal that fails (store
  // down) is reported and tried again at the next beat: the lease covers a few
  // missed beats. Losing the claim cannot let this owner overwrite the next
  // one's record: complete checks the token. The timers come from the clock
  // (the system clock's do not keep the process alive).
  function startHeartbeat(
    call: KeyedCallInfo,
    recordKey: string,
    token: string,
    horizonMs: number,
  ): () => void {
    if (renew === undefined) return () => {};
    const claimedAt = clock.now();
    let stopped = false;
    let timer: ClockTimer | undefined;
    const beat = async () => {
      timer = undefined;
      const leaseMs = renewalLeaseMs(clock.now() - claimedAt, horizonMs, opts.claimLeaseMs);
      if (stopped || leaseMs === undefined) return;
      let kept = true;
      try {
        kept = await renew(recordKey, token, leaseMs);
      } catch (e) {
        emit(
          {
            type: "store-error",
            operation: "renew",
            error: asError(e),
            failOpen: opts.failOpen,
          },
          call,
        );
      }
      if (stopped) return;
      if (!kept) {
        emit({ type: "claim-expired" }, call);
        return;
      }
      timer = clock.setTimeout(() => void beat(), opts.claimRenewMs, BACKGROUND);
    };
    timer = clock.setTimeout(() => void beat(), opts.claimRenewMs, BACKGROUND);
    return () => {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
    };
  }

  // finish stores an outcome; a store failure is reported, never thrown: the
  // handler has run and its answer must reach the caller. Except with a
  // transactional store: there a failed completion rolled the handler's
  // writes back, so the answer would lie; the call fails with ABORTED (safe
  // to retry: nothing it did remains). Undefined when done at once.
  function finish(
    call: KeyedCallInfo,
    recordKey: string,
    token: string,
    outcome: IdempotencyOutcome,
    code: Code | undefined,
    bytes = outcomeSize(outcome),
  ): void | Promise<void> {
    const failed = (e: unknown) => {
      emit(
        {
          type: "store-error",
          operation: "complete",
          error: asError(e),
          failOpen: opts.failOpen,
        },
        call,
      );
      return false;
    };
    const settled = (stored: boolean) => {
      if (stored) {
        emit({ type: "completed", code, bytes }, call);
      } else if (store.transactional === true) {
        emit({ type: "rolled-back" }, call);
        throw new ConnectError(
          "the idempotent call's transaction did not commit; its writes were rolled back",
          Code.Aborted,
          // Nothing the call did remains: a retry is safe, and the pushback
          // tells mesh clients to make one.
          { "grpc-retry-pushback-ms": String(opts.retryPushbackMs) },
        );
      }
    };
    const answered = (ok: boolean) => {
      if (!ok) emit({ type: "claim-lost" }, call);
      return ok;
    };
    let stored: boolean;
    try {
      if (sync === undefined) {
        return Promise.resolve(store.complete(recordKey, token, outcome, opts.ttlMs))
          .then(answered, failed)
          .then(settled);
      }
      stored = answered(sync.complete(recordKey, token, outcome, opts.ttlMs));
    } catch (e) {
      stored = failed(e);
    }
    return settled(stored);
  }

  // release frees a claim, then reports it `released` with `code` when given;
  // a failure is reported, never thrown. Undefined when done at once.
  function release(
    call: KeyedCallInfo,
    recordKey: string,
    token: string,
    code?: Code,
  ): void | Promise<void> {
    const released = () => {
      if (code !== undefined) emit({ type: "released", code }, call);
    };
    // The claim then lingers until its lease ends; a retry waits that long.
    const failed = (e: unknown) => {
      emit(
        {
          type: "store-error",
          operation: "release",
          error: asError(e),
          failOpen: opts.failOpen,
        },
        call,
      );
    };
    try {
      if (sync === undefined) {
        return Promise.resolve(store.release(recordKey, token)).then(released, (e) => {
          failed(e);
          released();
        });
      }
      sync.release(recordKey, token);
    } catch (e) {
      failed(e);
    }
    released();
  }

  // Not async: a call that passes through (no key, a streaming or
  // NO_SIDE_EFFECTS method) returns the handler's promise itself, two
  // promises less per call (each one runs the call scope's async hooks).
  return (next) => (req) => {
    try {
      return intercept(next, req);
    } catch (e) {
      return Promise.reject(e);
    }
  };

  function intercept(
    next: Parameters<Interceptor>[0],
    req: Parameters<Parameters<Interceptor>[0]>[0],
  ): ReturnType<Parameters<Interceptor>[0]> {
    if (req.contextValues.get(idempotencyHandledKey)) {
      return next(req);
    }
    req.contextValues.set(idempotencyHandledKey, true);
    const raw = req.header.get(IDEMPOTENCY_KEY_HEADER);
    if (req.stream) {
      if (raw !== null) {
        throw new ConnectError(
          "idempotency-key is not supported on streaming calls",
          Code.InvalidArgument,
        );
      }
      return next(req);
    }
    if (req.method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) {
      return next(req);
    }
    const method = methodName(req.method);
    if (raw === null) {
      if (methods.get(method)?.required === true) {
        throw new ConnectError(`idempotency-key is required for ${method}`, Code.InvalidArgument);
      }
      return next(req);
    }
    const check = checkIdempotencyKey(raw);
    if (!check.ok) {
      throw new ConnectError(check.problem, Code.InvalidArgument);
    }
    return keyedCall(
      next as (req: UnaryRequest) => Promise<UnaryResponse>,
      req,
      check.key,
      method,
      req.header.has(MIRROR_HEADER),
    );
  }
}

/**
 * KeyedCallInfo is what events name a keyed call by; the key itself stays
 * here (events carry its digest, made once and only when read).
 */
interface KeyedCallInfo {
  readonly method: string;
  readonly principal: string;
  readonly key: string;
  digest: string | undefined;
}

function digestOf(call: KeyedCallInfo): string {
  call.digest ??= keyDigest(call.key);
  return call.digest;
}

/** EventFields is an event without the IdempotencyCall fields emit adds. */
type EventFields = IdempotencyEvent extends infer E
  ? E extends IdempotencyEvent
    ? Omit<E, keyof IdempotencyCall>
    : never
  : never;

// `package.Service/Method` of each method, made once.
const methodNames = new WeakMap<DescMethod, string>();

function methodName(method: DescMethod): string {
  let name = methodNames.get(method);
  if (name === undefined) {
    name = `${method.parent.typeName}/${method.name}`;
    methodNames.set(method, name);
  }
  return name;
}

function replayCode(outcome: IdempotencyOutcome): Code | undefined {
  switch (outcome.kind) {
    case "ok":
      return undefined;
    case "error":
      return outcome.code;
    case "unstored":
      return Code.FailedPrecondition;
  }
}

function idempotencyError(
  message: string,
  code: Code,
  reason: IdempotencyErrorReason,
  metadata?: Record<string, string>,
): ConnectError {
  return new ConnectError(message, code, metadata, [
    { desc: ErrorInfoSchema, value: { reason, domain: IDEMPOTENCY_ERROR_DOMAIN } },
  ]);
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function validateOptions(opts: IdempotencyInterceptorOptions & IdempotencyDefaults): void {
  const positive = [
    ["maxLeaseMs", opts.maxLeaseMs],
    ["claimLeaseMs", opts.claimLeaseMs],
    ["claimRenewMs", opts.claimRenewMs],
    ["ttlMs", opts.ttlMs],
    ["maxStoredBytes", opts.maxStoredBytes],
    ["minPollMs", opts.minPollMs],
  ] as const;
  for (const [name, v] of positive) {
    if (!(v > 0) || !Number.isFinite(v))
      throw new RangeError(`${name} ${v} must be a finite number > 0`);
  }
  for (const [name, v] of [
    ["leaseMarginMs", opts.leaseMarginMs],
    ["retryPushbackMs", opts.retryPushbackMs],
  ] as const) {
    if (!(v >= 0) || !Number.isFinite(v))
      throw new RangeError(`${name} ${v} must be a finite number >= 0`);
  }
  if (!(opts.claimRenewMs < opts.claimLeaseMs)) {
    throw new RangeError(
      `claimRenewMs ${opts.claimRenewMs} must be < claimLeaseMs ${opts.claimLeaseMs}`,
    );
  }
  if (!(opts.maxPollMs >= opts.minPollMs)) {
    throw new RangeError(`maxPollMs ${opts.maxPollMs} must be >= minPollMs ${opts.minPollMs}`);
  }
  if (opts.onConcurrent !== "wait" && opts.onConcurrent !== "abort") {
    throw new RangeError(
      `onConcurrent ${JSON.stringify(opts.onConcurrent)} must be "wait" or "abort"`,
    );
  }
  if (opts.onTooLarge !== "mark" && opts.onTooLarge !== "release") {
    throw new RangeError(
      `onTooLarge ${JSON.stringify(opts.onTooLarge)} must be "mark" or "release"`,
    );
  }
  for (const c of opts.storedErrorCodes) {
    if (Code[c] === undefined) throw new RangeError(`storedErrorCodes: ${c} is not a Code`);
  }
  for (const name of Object.keys(opts.methods ?? {})) {
    if (!/^[^/]+\/[^/]+$/.test(name)) {
      throw new RangeError(`methods: ${JSON.stringify(name)} must be "package.Service/Method"`);
    }
  }
  if (opts.store !== undefined && typeof opts.store.claim !== "function") {
    throw new TypeError("store must be an IdempotencyStore");
  }
  if (opts.principal !== undefined && typeof opts.principal !== "function") {
    throw new TypeError("principal must be a function (req) => string");
  }
}
