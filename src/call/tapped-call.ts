import { createListenerSet, type ListenerSet } from "./listener-set.js";

/**
 * TappedCall is one finished call as a tap sees it (Linkerd's `tap`): what
 * ran, how it ended, where it went and which trace it belongs to. Request
 * headers are redacted exactly as in the call logs (credentials and cookies
 * replaced, `idempotency-key` hashed). Plain JSON, frozen.
 */
export interface TappedCall {
  /** side is `client` for a mesh transport's logical call, `server` for a served call. */
  readonly side: "client" | "server";
  /** method is `"pkg.Service/Method"`. */
  readonly method: string;
  /** code is the code's name as in the call logs and metrics (`OK`, `Unavailable`, ...). */
  readonly code: string;
  /** startedAt is the wall-clock start (epoch ms). */
  readonly startedAt: number;
  /** durationMs is how long the call took. */
  readonly durationMs: number;
  /** traceId is the W3C trace id of the call's span. */
  readonly traceId: string;
  /** target is the transport's target (client side). */
  readonly target?: string;
  /** endpoint is the address that served the call's result (client side). */
  readonly endpoint?: string;
  /** attempts is how many attempts the call took (client side, when retried or hedged). */
  readonly attempts?: number;
  /** peer is the caller's address (server side). */
  readonly peer?: string;
  /** error is the error message, when the call failed. */
  readonly error?: string;
  /** header are the request headers, redacted as in logs. */
  readonly header: Readonly<Record<string, string>>;
}

/**
 * MeshTapObserver receives what a running transport or server reports while
 * attached: each finished call and each typed event.
 */
export interface MeshTapObserver<E> {
  /** onCall receives each call as it finishes. */
  readonly onCall?: (call: TappedCall) => void;
  /** onEvent receives the same events as the `onEvent` option. */
  readonly onEvent?: (event: E) => void;
}

/**
 * MeshTap holds the listener sets behind a transport's or server's `tap()`:
 * the observe interceptor emits calls into `calls` only while someone is
 * attached, and `events` is one more listener of the event emitter.
 * @private
 */
export interface MeshTap<E> {
  readonly calls: ListenerSet<TappedCall>;
  readonly events: ListenerSet<E>;
  /** tap attaches an observer and returns the function that detaches it. */
  tap(observer: MeshTapObserver<E>): () => void;
}

/**
 * createMeshTap builds the listener sets and the `tap()` method of a
 * transport or server.
 * @private
 */
export function createMeshTap<E>(): MeshTap<E> {
  const calls = createListenerSet<TappedCall>();
  const events = createListenerSet<E>();
  return {
    calls,
    events,
    tap(observer) {
      if (typeof observer !== "object" || observer === null) {
        throw new TypeError(`tap observer ${String(observer)} must be an object`);
      }
      const off = [
        observer.onCall === undefined ? undefined : calls.listen(observer.onCall),
        observer.onEvent === undefined ? undefined : events.listen(observer.onEvent),
      ];
      return () => {
        for (const f of off) f?.();
      };
    },
  };
}
