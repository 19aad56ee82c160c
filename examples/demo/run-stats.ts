import { Code } from "@connectrpc/connect";
import type { MeshTransportEvent } from "../../src/index.js";

/** NotableEvent is something worth a line in the status: a kill, an ejection, a breaker. */
export interface NotableEvent {
  /** atS is seconds since the load started. */
  readonly atS: number;
  /** text renders the event; late, so that addresses learnt meanwhile get their replica's name. */
  readonly text: () => string;
}

/** MethodStats counts one method's calls. */
export interface MethodStats {
  calls: number;
  ok: number;
}

/**
 * RunStats collects what the client sees: calls and their outcomes, latency,
 * replays, and the transport's events (retries, breakers, ejections,
 * endpoint changes).
 */
export class RunStats {
  calls = 0;
  ok = 0;
  inFlight = 0;
  readonly failedByCode = new Map<string, number>();
  readonly methods = new Map<string, MethodStats>();
  /** latencies of every finished call, ms. */
  readonly latencies: number[] = [];
  /** replays counts CreateOrder answers carrying `idempotency-replayed: true`. */
  replays = 0;
  /** answeredBy counts successful calls by the endpoint of their last attempt. */
  readonly answeredBy = new Map<string, number>();
  retries = 0;
  transparentRetries = 0;
  readonly giveUps = new Map<string, number>();
  budgetExhausted = 0;
  hedges = 0;
  /** breakers holds each breaker's state by its key (`<target> <service>/<method>`). */
  readonly breakers = new Map<string, string>();
  breakerTransitions = 0;
  ejections = 0;
  restores = 0;
  /** ejected holds the endpoints ejected now. */
  readonly ejected = new Set<string>();
  endpoints = 0;
  endpointChanges = 0;
  readonly notable: NotableEvent[] = [];
  startedAt = performance.now();

  /** nameOf turns an address into a replica name (set by the demo as replicas start). */
  nameOf: (address: string) => string = (a) => a;
  /** onNotable is told of every notable event as it happens. */
  onNotable: (e: NotableEvent) => void = () => {};

  /** reset forgets the calls and retries so far (the warm-up), not the state of breakers and endpoints. */
  reset(): void {
    this.calls = 0;
    this.ok = 0;
    this.failedByCode.clear();
    this.methods.clear();
    this.latencies.length = 0;
    this.replays = 0;
    this.answeredBy.clear();
    this.retries = 0;
    this.transparentRetries = 0;
    this.giveUps.clear();
    this.budgetExhausted = 0;
    this.hedges = 0;
    this.notable.length = 0;
    this.startedAt = performance.now();
  }

  elapsedS(): number {
    return (performance.now() - this.startedAt) / 1_000;
  }

  note(text: string | (() => string)): void {
    const e = { atS: this.elapsedS(), text: typeof text === "string" ? () => text : text };
    this.notable.push(e);
    this.onNotable(e);
  }

  /** callDone records a finished call. */
  callDone(method: string, ms: number, code: Code | undefined, endpoint: string | undefined): void {
    this.calls++;
    this.latencies.push(ms);
    let m = this.methods.get(method);
    if (m === undefined) {
      m = { calls: 0, ok: 0 };
      this.methods.set(method, m);
    }
    m.calls++;
    if (code === undefined) {
      this.ok++;
      m.ok++;
      if (endpoint !== undefined) {
        this.answeredBy.set(endpoint, (this.answeredBy.get(endpoint) ?? 0) + 1);
      }
    } else {
      const name = codeName(code);
      this.failedByCode.set(name, (this.failedByCode.get(name) ?? 0) + 1);
    }
  }

  /** onEvent takes the transport's events (pass it to createMeshTransport's onEvent). */
  onEvent = (e: MeshTransportEvent): void => {
    if ("source" in e) {
      if (e.source === "balancer" && e.type === "endpoints") {
        this.endpoints = e.size;
        this.endpointChanges++;
        const parts = () => [
          ...e.added.map((a) => `+${this.nameOf(a)} (${a})`),
          ...e.removed.map((a) => `-${this.nameOf(a)} (${a})`),
        ];
        this.note(() => `endpoints ${parts().join(" ")} → ${e.size} in the balancer`);
      } else if (e.source === "outlier" && e.type === "ejected") {
        this.ejections++;
        this.ejected.add(e.address);
        this.note(
          () =>
            `outlier ejected ${this.nameOf(e.address)} for ${(e.ejectionMs / 1_000).toFixed(0)} s (${e.reason})`,
        );
      } else if (e.source === "outlier" && e.type === "restored") {
        this.restores++;
        this.ejected.delete(e.address);
        this.note(() => `outlier restored ${this.nameOf(e.address)}`);
      }
      return;
    }
    switch (e.type) {
      case "retry":
        this.retries++;
        if (e.transparent) this.transparentRetries++;
        return;
      case "give-up":
        this.giveUps.set(e.reason, (this.giveUps.get(e.reason) ?? 0) + 1);
        return;
      case "budget-exhausted":
        this.budgetExhausted++;
        return;
      case "hedge":
        this.hedges++;
        return;
      case "breaker":
        this.breakerTransitions++;
        this.breakers.set(e.key, e.to);
        this.note(`breaker ${shortMethod(e.key)} ${e.from} → ${e.to}`);
        return;
    }
  };
}

/** shortMethod turns a breaker key (`mesh:///orders example.orders.v1.OrderService/GetOrder`) into `GetOrder`. */
export function shortMethod(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/** codeName is a gRPC code's canonical name, e.g. UNAVAILABLE. */
export function codeName(code: Code): string {
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** percentile of sorted values, p in [0, 1]. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}
