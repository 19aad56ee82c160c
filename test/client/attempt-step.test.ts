import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextValues,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { GetOrderRequestSchema, OrderService } from "../../gen/example/orders/v1/orders_pb.js";
import type { BalancerPick, BalancerPickInfo } from "../../src/balancer/balancer.js";
import type { CallOutcome as PickOutcome } from "../../src/breaker/call-outcome.js";
import {
  attemptKey,
  callOutcomeKey,
  createAttempt,
  type MeshCallOutcome,
  withAttempt,
} from "../../src/call/attempt.js";
import { createMeshCall, meshCallKey } from "../../src/call/mesh-call.js";
import { ConnectionLostError } from "../../src/call/transport-error.js";
import { createAttemptStep } from "../../src/client/attempt-step.js";
import { createEndpoint } from "../../src/discovery/endpoint.js";
import type { EndpointTransport } from "../../src/grpc/endpoint-transport.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";

type Answer = (header: Headers) => Promise<UnaryResponse>;

/** harness: a balancer with one endpoint whose transport answers by `answer`. */
function harness(answer: Answer) {
  const clock = createFakeClock(1_000);
  const picks: (BalancerPickInfo | undefined)[] = [];
  const done: PickOutcome[] = [];
  const sent: Headers[] = [];
  const transport = {
    unary: (_m: unknown, _s: unknown, _t: unknown, header: Headers) => {
      sent.push(header);
      return answer(header);
    },
  } as unknown as Transport;
  const subchannel: EndpointTransport = {
    address: "10.0.0.1:80",
    transport,
    state: () => "open",
    close: () => {},
  };
  const pick = (): BalancerPick<EndpointTransport> => ({
    endpoint: createEndpoint("10.0.0.1:80"),
    subchannel,
    done: (o) => done.push(o),
  });
  const step = createAttemptStep({
    clock,
    firstResolutionTimeoutMs: 1_000,
    balancer: {
      pick: (info) => {
        picks.push(info);
        return pick();
      },
      waitForPick: () => Promise.reject(new Error("not expected")),
    },
  });
  return { clock, picks, done, sent, step };
}

function request(deadlineAt: number | undefined, attempt?: ReturnType<typeof createAttempt>) {
  const values = createContextValues();
  const { call, report } = createMeshCall("t", deadlineAt);
  const outcomes: MeshCallOutcome[] = [];
  values.set(meshCallKey, call);
  values.set(callOutcomeKey, (o) => {
    outcomes.push(o);
    report(o);
  });
  const req = {
    stream: false,
    service: OrderService,
    method: OrderService.method.getOrder,
    requestMethod: "POST",
    url: "http://x/example.orders.v1.OrderService/GetOrder",
    header: new Headers(),
    contextValues: attempt === undefined ? values : withAttempt(values, attempt),
    message: create(GetOrderRequestSchema, { id: "1" }),
    signal: new AbortController().signal,
  } as unknown as UnaryRequest;
  return { req, outcomes, call };
}

const ok: Answer = async () => ({ stream: false }) as UnaryResponse;

describe("attempt step", () => {
  it.each([
    // A shed answer (RESOURCE_EXHAUSTED with a pushback delay) carries it to the balancer.
    [Code.ResourceExhausted, "250", { pushbackMs: 250 }],
    [Code.ResourceExhausted, "0", { pushbackMs: 0 }],
    // No header, or "do not retry": nothing to penalise for.
    [Code.ResourceExhausted, undefined, {}],
    [Code.ResourceExhausted, "-1", {}],
    // Only RESOURCE_EXHAUSTED is load shedding.
    [Code.Unavailable, "250", {}],
  ] as const)(
    "reports code %i with pushback %s to the balancer as %o",
    async (code, pushback, extra) => {
      const h = harness(async () => {
        throw new ConnectError(
          "shed",
          code,
          pushback === undefined ? undefined : new Headers({ "grpc-retry-pushback-ms": pushback }),
        );
      });
      const { req } = request(5_000);
      await expect(h.step(req)).rejects.toMatchObject({ code });
      expect(h.done).toEqual([{ ok: false, code, latencyMs: 0, ...extra }]);
    },
  );

  it("sends the attempt with its own time left, passes its avoid list, and reports the endpoint", async () => {
    const h = harness(ok);
    const picked: string[] = [];
    const attempt = createAttempt({
      number: 2,
      deadlineAt: 1_250,
      avoid: ["10.0.0.9:80"],
      picked: (e) => picked.push(e),
    });
    const { req, outcomes } = request(5_000, attempt);
    expect(req.contextValues.get(attemptKey)).toBe(attempt);
    await h.step(req);
    // The request's headers go along for traffic policies' header routes.
    expect(h.picks).toEqual([{ avoid: ["10.0.0.9:80"], header: req.header }]);
    expect(h.sent[0]?.get("grpc-timeout")).toBe("250m");
    expect(picked).toEqual(["10.0.0.1:80"]);
    // With an Attempt, the retry step (not this one) reports the call's outcome.
    expect(outcomes).toEqual([]);
    expect(h.done).toEqual([{ ok: true, latencyMs: 0, latencySample: true }]);
  });

  it("with no Attempt (nothing retries), uses the call's deadline and reports the call's outcome", async () => {
    const h = harness(ok);
    const { req, outcomes, call } = request(1_400);
    await h.step(req);
    expect(h.picks).toEqual([{ header: req.header }]);
    expect(h.picks[0]?.header).toBe(req.header);
    expect(h.sent[0]?.get("grpc-timeout")).toBe("400m");
    expect(outcomes).toEqual([{ attempt: 1, endpoint: "10.0.0.1:80" }]);
    expect(call).toMatchObject({ attempt: 1, endpoint: "10.0.0.1:80" });
  });

  it("fails DEADLINE_EXCEEDED without sending when the attempt's deadline has passed", async () => {
    const h = harness(ok);
    const { req } = request(5_000, createAttempt({ number: 3, deadlineAt: 1_000 }));
    await expect(h.step(req)).rejects.toMatchObject({
      code: Code.DeadlineExceeded,
      rawMessage: "deadline exceeded before attempt 3 could start",
    });
    expect(h.sent).toEqual([]);
    expect(h.done).toEqual([{ ok: false, code: Code.Canceled, latencyMs: 0 }]);
  });

  it("classifies a lost connection as UNAVAILABLE naming the endpoint, and reports it with its latency", async () => {
    const h = harness(async () => {
      h.clock.advance(30);
      throw new ConnectError("read ECONNRESET", Code.Aborted, undefined, undefined, {
        code: "ECONNRESET",
      });
    });
    const { req } = request(undefined, createAttempt({ number: 1 }));
    const error = await h.step(req).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/connection to 10\.0\.0\.1:80 lost/);
    expect(error?.cause).toBeInstanceOf(ConnectionLostError);
    expect(h.done).toEqual([{ ok: false, code: Code.Unavailable, latencyMs: 30 }]);
  });
});
