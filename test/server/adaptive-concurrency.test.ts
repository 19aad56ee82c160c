import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  type ConcurrencyLimitOptions,
  CRITICALITY_HEADER,
  createMeshServer,
  createMeshTransport,
  createMetrics,
  type LimitEvent,
  type MeshMetrics,
  type MeshServer,
  type MeshTransport,
  type MeshTransportOptions,
} from "../../src/index.js";
import {
  type ConcurrencyLimit,
  createConcurrencyLimit,
} from "../../src/limit/concurrency-limit.js";
import { createEchoImpl, EchoService, sleep } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

const ECHO = "test.v1.EchoService/Echo";

/**
 * A service with a fixed capacity: `workers` calls are served at once, each
 * for `serviceMs`; the rest wait in a FIFO queue inside the handler, so
 * latency grows with concurrency, as in a real saturated server.
 */
function capacityLimited(workers: number, serviceMs: number) {
  let busy = 0;
  const queue: (() => void)[] = [];
  const acquire = () =>
    new Promise<void>((resolve) => {
      if (busy < workers) {
        busy++;
        resolve();
      } else {
        queue.push(resolve);
      }
    });
  const releaseWorker = () => {
    const next = queue.shift();
    if (next === undefined) busy--;
    else next();
  };
  const gates: (() => void)[] = [];
  const base = createEchoImpl();
  const impl: ServiceImpl<typeof EchoService> = {
    ...base,
    async echo(req, ctx) {
      if (req.payload.length > 0 && req.payload[0] === 1) {
        // A call that waits until the test releases it.
        await new Promise<void>((resolve) => gates.push(resolve));
        return { payload: req.payload, timeoutMs: 0, servedBy: "gated" };
      }
      await acquire();
      try {
        await sleep(serviceMs, ctx.signal);
      } finally {
        releaseWorker();
      }
      return { payload: req.payload, timeoutMs: 0, servedBy: "pool" };
    },
  };
  const openGates = (n = gates.length) => {
    for (const g of gates.splice(0, n)) g();
  };
  return { impl, openGates, gated: () => gates.length };
}

interface Harness {
  readonly server: MeshServer;
  readonly transport: MeshTransport;
  readonly echo: ReturnType<typeof createClient<typeof EchoService>>;
  readonly events: LimitEvent[];
  readonly metrics: MeshMetrics;
  readonly service: ReturnType<typeof capacityLimited>;
}

let open: Harness | undefined;
afterEach(async () => {
  open?.service.openGates();
  await open?.transport.close();
  await open?.server.close({ graceMs: 0 });
  open = undefined;
});

async function start(
  limit: ConcurrencyLimitOptions,
  client: Partial<MeshTransportOptions> = {},
  workers = 2,
  serviceMs = 10,
): Promise<Harness> {
  const events: LimitEvent[] = [];
  const metrics = await createMetrics();
  const service = capacityLimited(workers, serviceMs);
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, service.impl),
    logger: false,
    metrics,
    concurrencyLimit: {
      ...limit,
      onEvent: (e) => events.push(e),
    },
  });
  const bound = await server.listen();
  const transport = createMeshTransport({
    target: bound.address,
    logger: false,
    // The server's answers are under test: client retries and breakers would hide them.
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
    ...client,
  });
  open = {
    server,
    transport,
    echo: createClient(EchoService, transport),
    events,
    metrics,
    service,
  };
  return open;
}

/** startQueued is `start` with the limit built here, so a test can read its queue. */
async function startQueued(
  options: ConcurrencyLimitOptions,
): Promise<Harness & { readonly limit: ConcurrencyLimit }> {
  const events: LimitEvent[] = [];
  const limit = createConcurrencyLimit({ ...options, onEvent: (e) => events.push(e) });
  const service = capacityLimited(2, 10);
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, service.impl),
    logger: false,
    interceptors: [limit.interceptor],
  });
  const bound = await server.listen();
  const transport = createMeshTransport({
    target: bound.address,
    logger: false,
    outlierDetection: false,
    retry: false,
    circuitBreaker: false,
  });
  const metrics = await createMetrics();
  open = {
    server,
    transport,
    echo: createClient(EchoService, transport),
    events,
    metrics,
    service,
  };
  return { ...open, limit };
}

type Outcome = "ok" | "exhausted" | "other";

/** load runs `total` calls with `concurrency` callers in a closed loop and tallies the outcomes. */
async function load(
  call: (i: number) => Promise<unknown>,
  total: number,
  concurrency: number,
): Promise<{ outcomes: Map<Outcome, number>; pushbacks: Set<string | null>; perCall: Outcome[] }> {
  const outcomes = new Map<Outcome, number>();
  const pushbacks = new Set<string | null>();
  const perCall: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < total; i = next++) {
      let o: Outcome = "ok";
      try {
        await call(i);
      } catch (e) {
        const err = ConnectError.from(e);
        if (err.code === Code.ResourceExhausted) {
          o = "exhausted";
          pushbacks.add(err.metadata.get("grpc-retry-pushback-ms"));
        } else {
          o = "other";
        }
      }
      perCall[i] = o;
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { outcomes, pushbacks, perCall };
}

const ADAPTIVE = {
  algorithm: "gradient2",
  initialLimit: 20,
  // Small windows so the test needs few calls; the decision is the same.
  windowMs: 20,
  minSamples: 5,
} as const;

describe("adaptive concurrency limit (gradient2) on a real server", () => {
  it("sheds calls past the learned limit with RESOURCE_EXHAUSTED + pushback, loses none, and reports the limit", async () => {
    const { echo, events, metrics, server } = await start({ adaptive: ADAPTIVE, pushbackMs: 30 });
    // Unloaded first: the long-window RTT learns the service's own latency.
    const warm = await load(() => echo.echo({}), 80, 1);
    expect(warm.outcomes.get("ok")).toBe(80);
    expect(events.filter((e) => e.type === "shed")).toHaveLength(0);

    // 40 callers against a capacity of 2 in flight: latency climbs, the limit falls below 20.
    const total = 800;
    const burst = await load(() => echo.echo({}), total, 40);
    const ok = burst.outcomes.get("ok") ?? 0;
    const exhausted = burst.outcomes.get("exhausted") ?? 0;
    expect(burst.outcomes.get("other") ?? 0).toBe(0);
    expect(ok + exhausted).toBe(total);
    expect(exhausted).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    expect([...burst.pushbacks]).toEqual(["30"]);

    const changes = events.filter((e) => e.type === "limit-changed");
    expect(changes.length).toBeGreaterThan(0);
    const lowest = Math.min(...changes.map((e) => e.to));
    expect(lowest).toBeLessThan(20);
    expect(changes.every((e) => e.key === ECHO && e.algorithm === "gradient2")).toBe(true);
    const sheds = events.filter((e) => e.type === "shed");
    expect(sheds).toHaveLength(exhausted);

    const text = await metrics.text();
    const last = changes.at(-1);
    expect(text).toContain(`mesh_concurrency_limit{key="${ECHO}"} ${last?.to}`);
    expect(text).toContain(
      `mesh_concurrency_shed_total{grpc_service="test.v1.EchoService",grpc_method="Echo",criticality="default"} ${exhausted}`,
    );
    await waitFor(() => server.inFlight === 0, 10_000);
  });

  it("keeps one limit for every method with per: server", async () => {
    const { echo, events } = await start({ adaptive: { ...ADAPTIVE, per: "server" } });
    await load(() => echo.echo({}), 60, 1);
    await load(() => echo.echo({}), 400, 40);
    const changes = events.filter((e) => e.type === "limit-changed");
    expect(changes.length).toBeGreaterThan(0);
    expect(changes.every((e) => e.key === "*")).toBe(true);
  });
});

describe("priority shedding", () => {
  // A fixed limit of 4 and gated calls make the admissions exact: sheddable
  // calls get half the limit, critical and default calls all of it.
  it("refuses sheddable calls first and admits critical ones up to the limit", async () => {
    const { echo, service } = await start(
      // criticalQueueMs 0: a critical call on a full limit is refused at once (no wait).
      { maxInFlight: 4, criticalQueueMs: 0 },
      { criticality: { [ECHO]: "sheddable" } },
    );
    const gated = new Uint8Array([1]);
    const pending: Promise<unknown>[] = [];
    const hold = (critical: boolean) => {
      const p = echo.echo(
        { payload: gated },
        critical ? { headers: { [CRITICALITY_HEADER]: "critical" } } : {},
      );
      pending.push(p.catch(() => undefined));
      return p;
    };
    // Two sheddable calls fill the sheddable share (floor(0.5 * 4) = 2).
    void hold(false);
    void hold(false);
    await waitFor(() => service.gated() === 2);
    const refused = await hold(false).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((refused as ConnectError).rawMessage).toContain("(sheddable share)");
    // A per-call header beats the transport's per-method criticality: critical
    // calls still get the two slots left.
    void hold(true);
    void hold(true);
    await waitFor(() => service.gated() === 4);
    const full = await hold(true).catch((e: unknown) => ConnectError.from(e));
    expect((full as ConnectError).code).toBe(Code.ResourceExhausted);
    service.openGates();
    await Promise.all(pending);
  });

  it("queues a critical call on a full limit and hands it the next free slot before any new call", async () => {
    // A wait far longer than the test: only the freed slot may end it.
    const { echo, service, events, limit } = await startQueued({
      maxInFlight: 2,
      criticalQueueMs: 60_000,
    });
    const gated = new Uint8Array([1]);
    const held = [echo.echo({ payload: gated }), echo.echo({ payload: gated })];
    await waitFor(() => service.gated() === 2);
    const critical = echo.echo({}, { headers: { [CRITICALITY_HEADER]: "critical" } });
    await waitFor(() => limit.waiting(ECHO) === 1);
    // While it waits, new calls (here default ones) are refused: the first freed slot is its.
    const refused = await echo.echo({}).catch((e: unknown) => ConnectError.from(e));
    expect((refused as ConnectError).code).toBe(Code.ResourceExhausted);
    service.openGates(1);
    expect((await critical).servedBy).toBe("pool");
    service.openGates();
    await Promise.all(held);
    expect(events.filter((e) => e.type === "shed").map((e) => e.criticality)).toEqual(["default"]);
  });

  it("refuses a queued critical call once its wait is over, and lets a cancelled one go", async () => {
    const { echo, service, events, limit } = await startQueued({
      maxInFlight: 1,
      criticalQueueMs: 1,
    });
    const held = echo.echo({ payload: new Uint8Array([1]) });
    await waitFor(() => service.gated() === 1);
    const critical = { headers: { [CRITICALITY_HEADER]: "critical" } };
    const late = await echo.echo({}, critical).catch((e: unknown) => ConnectError.from(e));
    expect((late as ConnectError).code).toBe(Code.ResourceExhausted);
    expect((late as ConnectError).rawMessage).toContain("(critical share)");
    expect(events.filter((e) => e.type === "shed")).toHaveLength(1);
    expect(limit.waiting(ECHO)).toBe(0);
    service.openGates();
    await held;
    // The slot is free again: a critical call runs at once.
    expect((await echo.echo({}, critical)).servedBy).toBe("pool");
  });

  it("a critical call whose deadline passes while queued ends DEADLINE_EXCEEDED and frees its place", async () => {
    const { echo, service, limit } = await startQueued({ maxInFlight: 1, criticalQueueMs: 60_000 });
    const held = echo.echo({ payload: new Uint8Array([1]) });
    await waitFor(() => service.gated() === 1);
    const critical = { headers: { [CRITICALITY_HEADER]: "critical" } };
    const expired = await echo
      .echo({}, { ...critical, timeoutMs: 100 })
      .catch((e: unknown) => ConnectError.from(e));
    expect((expired as ConnectError).code).toBe(Code.DeadlineExceeded);
    await waitFor(() => limit.waiting(ECHO) === 0);
    expect(limit.inFlight(ECHO)).toBe(1);
    service.openGates();
    await held;
    // Had the expired call kept its place, it would take this slot; it does not.
    expect((await echo.echo({}, critical)).servedBy).toBe("pool");
    expect((await echo.echo({})).servedBy).toBe("pool");
  });

  it("answers an unknown criticality with INVALID_ARGUMENT naming it", async () => {
    const { echo } = await start({ maxInFlight: 4 });
    const err = await echo
      .echo({}, { headers: { [CRITICALITY_HEADER]: "urgent" } })
      .catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain('"urgent"');
  });

  it("under overload with the adaptive limit, critical calls succeed while sheddable ones absorb the refusals", async () => {
    const { echo, events } = await start({ adaptive: ADAPTIVE }, {}, 4);
    await load(() => echo.echo({}), 80, 1);
    const critical = { headers: { [CRITICALITY_HEADER]: "critical" } };
    const sheddable = { headers: { [CRITICALITY_HEADER]: "sheddable" } };
    // A few critical callers (within the capacity) beside many sheddable ones (far beyond it).
    const [c, s] = await Promise.all([
      load(() => echo.echo({}, critical), 200, 3),
      load(() => echo.echo({}, sheddable), 800, 37),
    ]);
    expect(c.outcomes.get("other") ?? 0).toBe(0);
    expect(s.outcomes.get("other") ?? 0).toBe(0);
    const criticalRefused = c.outcomes.get("exhausted") ?? 0;
    const sheddableRefused = s.outcomes.get("exhausted") ?? 0;
    expect(sheddableRefused).toBeGreaterThan(0);
    // Critical calls are refused at under a fifth of the sheddable rate (in practice almost never).
    expect(criticalRefused / 200).toBeLessThan(sheddableRefused / 800 / 5);
    const sheds = events.filter((e) => e.type === "shed");
    expect(sheds.filter((e) => e.criticality === "sheddable")).toHaveLength(sheddableRefused);
    expect(sheds.filter((e) => e.criticality === "critical")).toHaveLength(criticalRefused);
  });
});
