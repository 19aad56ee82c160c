import {
  Code,
  ConnectError,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import type { Balancer, BalancerPick, BalancerPickInfo } from "../balancer/balancer.js";
import { attemptKey, callOutcomeKey } from "../call/attempt.js";
import { GRPC_TIMEOUT_HEADER, RETRY_PUSHBACK_HEADER } from "../call/headers.js";
import { meshCallKey } from "../call/mesh-call.js";
import { mapStreamErrors, onStreamEnd } from "../call/stream-end.js";
import { classifyTransportError } from "../call/transport-error.js";
import type { Clock } from "../clock.js";
import type { EndpointTransport } from "../grpc/endpoint-transport.js";
import { encodeGrpcTimeout } from "../grpc-timeout.js";
import { parsePushback, remainingMs } from "../retry/deadline-math.js";

/** AttemptStep sends one attempt: the innermost step of the client chain. */
export type AttemptStep = (
  req: UnaryRequest | StreamRequest,
) => Promise<UnaryResponse | StreamResponse>;

/** AttemptStepDeps are what the transport lends its attempt step. */
export interface AttemptStepDeps {
  readonly balancer: Pick<Balancer<EndpointTransport>, "pick" | "waitForPick">;
  readonly clock: Clock;
  /** firstResolutionTimeoutMs bounds the wait for endpoints of a call with no deadline. */
  readonly firstResolutionTimeoutMs: number;
}

/**
 * createAttemptStep returns the step that runs once per attempt, after every
 * interceptor: it picks an endpoint (passing over the attempt's `avoid`
 * list), tells the attempt which one (`Attempt.picked`), rewrites
 * `grpc-timeout` to the attempt's time left (Connect computes it once, before
 * interceptors), sends the request on that endpoint's connection, gives
 * connection failures their gRPC code (classifyTransportError), and reports
 * the outcome to the picker once the response settles.
 */
export function createAttemptStep(deps: AttemptStepDeps): AttemptStep {
  const { balancer, clock } = deps;
  return async (req) => {
    const call = req.contextValues.get(meshCallKey);
    const attempt = req.contextValues.get(attemptKey);
    // The header lets a traffic policy route by it (header routes).
    const info: BalancerPickInfo =
      attempt === undefined || attempt.avoid.length === 0
        ? { header: req.header }
        : { avoid: attempt.avoid, header: req.header };
    const pick =
      balancer.pick(info) ??
      (await balancer.waitForPick(
        req.signal,
        // Give up just before the deadline, so the caller learns why (no
        // endpoint) instead of a bare DEADLINE_EXCEEDED.
        call?.deadlineAt === undefined
          ? deps.firstResolutionTimeoutMs
          : Math.max(0, remainingMs(call.deadlineAt, clock.now()) - 1),
        info,
      ));
    const address = pick.endpoint.address;
    const started = clock.now();
    const deadlineAt = attempt?.deadlineAt ?? call?.deadlineAt;
    if (deadlineAt !== undefined) {
      const leftMs = remainingMs(deadlineAt, started);
      if (leftMs <= 0) {
        pick.done({ ok: false, code: Code.Canceled, latencyMs: 0 });
        throw new ConnectError(
          `deadline exceeded before attempt ${attempt?.number ?? 1} could start`,
          Code.DeadlineExceeded,
        );
      }
      req.header.set(GRPC_TIMEOUT_HEADER, encodeGrpcTimeout(leftMs));
    }
    if (attempt === undefined) {
      // Nothing retries this call: this one attempt decides it.
      req.contextValues.get(callOutcomeKey)?.({ attempt: 1, endpoint: address });
    } else {
      attempt.picked(address);
    }
    const { transport: inner } = pick.subchannel;
    // The first call on a new connection pays the handshake: not a latency
    // sample for p2c (it would make a new endpoint look slow for seconds).
    const connState = pick.subchannel.state();
    const latencySample = connState !== "closed" && connState !== "connecting";
    const classify = (e: unknown) => classifyTransportError(e, address, req.signal.aborted);
    // timeoutMs stays undefined: the deadline is enforced by the call's signal
    // and announced by the header written above.
    const sent: Promise<UnaryResponse | StreamResponse> = req.stream
      ? inner.stream(req.method, req.signal, undefined, req.header, req.message, req.contextValues)
      : inner.unary(req.method, req.signal, undefined, req.header, req.message, req.contextValues);
    // One settle for the three ways an attempt ends (one then, not three
    // chained promises): a unary answer or any failure before a response is
    // reported at once; a stream's latency is its time to response headers,
    // and it stays pending (for load) until it ends.
    return sent.then(
      (res) => {
        const answeredAt = clock.now();
        if (!res.stream) {
          pick.done({ ok: true, latencyMs: answeredAt - started, latencySample });
          return res;
        }
        const message = onStreamEnd(mapStreamErrors(res.message, classify), (error) =>
          reportDone(pick, error, answeredAt - started, latencySample),
        );
        return { ...res, message };
      },
      (e: unknown) => {
        const error = classify(e);
        reportDone(pick, error, clock.now() - started, latencySample);
        throw error;
      },
    );
  };
}

// reportDone tells the picker how an attempt ended: a shed call
// (RESOURCE_EXHAUSTED with pushback) also says how long the endpoint wants
// to be left alone.
function reportDone(
  pick: Pick<BalancerPick<EndpointTransport>, "done">,
  error: unknown,
  latencyMs: number,
  latencySample: boolean,
): void {
  if (error === undefined) {
    pick.done({ ok: true, latencyMs, latencySample });
    return;
  }
  const e = ConnectError.from(error);
  const pushback =
    e.code === Code.ResourceExhausted
      ? parsePushback(e.metadata.get(RETRY_PUSHBACK_HEADER))
      : undefined;
  pick.done(
    pushback?.retry === true
      ? { ok: false, code: e.code, latencyMs, pushbackMs: pushback.delayMs }
      : { ok: false, code: e.code, latencyMs },
  );
}
