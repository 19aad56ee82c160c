// A discrete-event simulation of p2c-ewma over replicas with a capacity,
// driven by the real picker and load penalty on a fake clock: the
// balancing decision alone, without this machine's CPU noise.

import { Code } from "@connectrpc/connect";
import { syncEndpointLoads } from "../../../src/balancer/endpoint-load.js";
import { createLoadPenalty, type LoadPenaltyOptions } from "../../../src/balancer/load-penalty.js";
import { createP2cEwmaPicker } from "../../../src/balancer/p2c-ewma.js";
import { createEndpoint } from "../../../src/discovery/endpoint.js";
import { createFakeClock } from "../../../src/testing/fake-clock.js";

/** SimReplica is one replica: `workers` slots of `serviceMs`; calls beyond them are shed. */
export interface SimReplica {
  readonly name: string;
  readonly workers: number;
}

/** SimOptions describes one simulated run. */
export interface SimOptions {
  readonly replicas: readonly SimReplica[];
  readonly serviceMs: number;
  readonly pushbackMs: number;
  /** rps is the offered load (Poisson arrivals). */
  readonly rps: number;
  readonly durationMs: number;
  /** networkMs is the round trip added to every answer. */
  readonly networkMs: number;
  readonly loadPenalty: LoadPenaltyOptions | false;
  readonly seed: number;
}

/** SimResult counts what happened in the run. */
export interface SimResult {
  readonly offered: number;
  readonly ok: number;
  readonly shed: number;
  readonly attempts: Readonly<Record<string, number>>;
  readonly shedBy: Readonly<Record<string, number>>;
}

function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

/** simulate runs the balancer decision against replicas with a capacity. */
export function simulate(o: SimOptions): SimResult {
  const clock = createFakeClock(0);
  const random = seeded(o.seed);
  const endpoints = o.replicas.map((x) => createEndpoint(x.name));
  const loads = syncEndpointLoads(new Map(), endpoints, 0);
  const penalty = o.loadPenalty === false ? undefined : createLoadPenalty(o.loadPenalty);
  const picker = createP2cEwmaPicker(endpoints, {
    loads,
    clock,
    random,
    ...(penalty === undefined ? {} : { extraLoad: penalty.extraLoad }),
  });
  const busy = new Map(o.replicas.map((x) => [x.name, 0]));
  const workers = new Map(o.replicas.map((x) => [x.name, x.workers]));
  const attempts: Record<string, number> = {};
  const shedBy: Record<string, number> = {};
  let ok = 0;
  let shed = 0;
  let offered = 0;
  let next = 0;
  while (next < o.durationMs) {
    clock.set(next);
    offered++;
    const pick = picker.pick()!;
    const name = pick.endpoint.address;
    attempts[name] = (attempts[name] ?? 0) + 1;
    // The request reaches the server after half the round trip.
    const arrive = () => {
      const now = busy.get(name) ?? 0;
      if (now >= (workers.get(name) ?? 0)) {
        shed++;
        shedBy[name] = (shedBy[name] ?? 0) + 1;
        clock.setTimeout(() => {
          const outcome = {
            ok: false,
            code: Code.ResourceExhausted,
            latencyMs: o.networkMs,
            pushbackMs: o.pushbackMs,
          };
          // What the balancer does with a shed answer (balancer.ts).
          if (penalty !== undefined) {
            penalty.record(name, o.pushbackMs, clock.now());
            pick.done({ ...outcome, latencySample: false });
          } else {
            pick.done(outcome);
          }
        }, o.networkMs / 2);
        return;
      }
      busy.set(name, now + 1);
      clock.setTimeout(() => {
        busy.set(name, (busy.get(name) ?? 1) - 1);
        clock.setTimeout(() => {
          ok++;
          pick.done({ ok: true, latencyMs: o.serviceMs + o.networkMs });
        }, o.networkMs / 2);
      }, o.serviceMs);
    };
    clock.setTimeout(arrive, o.networkMs / 2);
    next += (-Math.log(1 - random()) * 1000) / o.rps;
  }
  clock.advance(o.serviceMs * 10 + o.networkMs * 10);
  return { offered, ok, shed, attempts, shedBy };
}
