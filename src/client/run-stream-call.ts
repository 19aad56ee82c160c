import { create, type DescMessage, isMessage, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type StreamRequest, type StreamResponse } from "@connectrpc/connect";
import { mapIterable } from "../call/map-iterable.js";
import { isReadPending, onStreamEnd } from "../call/stream-end.js";

/** StreamCall is one streaming call for runStreamCall. */
export interface StreamCall {
  /** req carries the call's own signal (`own` linked with the caller's, and the deadline). */
  readonly req: StreamRequest;
  /** own aborts the call from here: a reader that abandons the stream cancels it. */
  readonly own: AbortController;
  /** cleanup unlinks the call's signal and clears its deadline; called once when the call ends. */
  readonly cleanup: () => void;
  /** explain turns a failure before the response into the error the caller sees. */
  readonly explain: (error: unknown) => ConnectError;
}

const NOOP = () => {};

/**
 * runStreamCall runs a streaming call through the client chain `next`, doing
 * what Connect's runStreamingCall does for a transport that honours its
 * signal: request messages are normalized, the call ends (signal cleanup,
 * request iterable closed) once with its outcome, a call aborted while
 * nobody reads is read to its end so every interceptor sees the outcome,
 * and abandoning the response cancels the call. Connect's version puts two
 * wrappers and a `Promise.race` on every message, and each race leaves a
 * reaction on a promise that lives as long as the stream.
 */
export function runStreamCall(
  call: StreamCall,
  next: (req: StreamRequest) => Promise<StreamResponse>,
): Promise<StreamResponse> {
  const { req, own } = call;
  const signal = req.signal;
  const input = req.message;
  let ended = false;
  let message: AsyncIterable<Message> | undefined;
  const onAbort = () => {
    // A read in flight ends with the failure itself; otherwise read on, so
    // that the layers' end hooks run (loads, breakers, the call's line).
    if (!ended && message !== undefined && !isReadPending(message)) {
      void drain(message);
    }
  };
  const finish = (error: unknown) => {
    if (ended) return;
    ended = true;
    signal.removeEventListener("abort", onAbort);
    // An abandoned or failed stream: make sure the transport stops too.
    if (error !== undefined && !own.signal.aborted) own.abort(error);
    call.cleanup();
    closeInput(input, error);
  };
  signal.addEventListener("abort", onAbort);
  return next({ ...req, message: normalizeInput(req.method.input, input) }).then(
    (res) => {
      message = onStreamEnd(res.message, finish);
      if (signal.aborted) onAbort();
      return { ...res, message };
    },
    (e: unknown) => {
      const error = call.explain(e);
      finish(error);
      throw error;
    },
  );
}

async function drain(message: AsyncIterable<unknown>): Promise<void> {
  const it = message[Symbol.asyncIterator]();
  try {
    while ((await it.next()).done !== true) {
      // Discard: the caller has stopped reading.
    }
  } catch {
    // The outcome went to the end hooks.
  }
}

// closeInput lets the caller's request iterable clean up, as Connect does:
// throw() with the error of a failed call, then return().
function closeInput(input: AsyncIterable<unknown>, error: unknown): void {
  try {
    const it = input[Symbol.asyncIterator]();
    if (error !== undefined) it.throw?.(ConnectError.from(error, Code.Canceled))?.catch(NOOP);
    it.return?.()?.catch(NOOP);
  } catch {
    // An iterable that cannot be closed has nothing to clean up.
  }
}

/** normalizeInput makes each request message a message of `desc` (init objects are created). */
function normalizeInput(desc: DescMessage, input: AsyncIterable<unknown>): AsyncIterable<Message> {
  return mapIterable(input, (m) => (isMessage(m, desc) ? m : create(desc, m as never)));
}
