import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createMeshRegistry,
  createMeshServer,
  createMeshTransport,
  type MeshRegistry,
  type MeshServer,
  type MeshTransport,
  type MeshTransportEvent,
  type MeshTransportOptions,
  type TrafficEvent,
  type TrafficPolicy,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";
import { waitFor } from "../support/wait-for.js";

// Four replicas registered in the embedded registry with zone and version
// metadata, as a deployment would announce them.
const FLEET = [
  { name: "a1", zone: "a", version: "1.4.0" },
  { name: "a2", zone: "a", version: "1.4.0" },
  { name: "b1", zone: "b", version: "1.4.0" },
  { name: "b2", zone: "b", version: "1.5.0" },
] as const;

/** FAIL asks the replica named in `failMessage` to answer UNAVAILABLE. */
const FAIL = 99;

const CANARY: TrafficPolicy = {
  subsets: [{ name: "canary", match: { version: "1.5.0" }, percent: 20 }],
  routes: [{ header: "x-canary", value: "1", subset: "canary" }],
};

describe("traffic policy over real servers resolved from the embedded registry", () => {
  let dir: string;
  let registry: MeshRegistry;
  const servers: MeshServer[] = [];
  const transports: MeshTransport[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "traffic-policy-"));
    registry = createMeshRegistry({ dir, pollMs: 200 });
    for (const r of FLEET) {
      const impl = createEchoImpl(r.name);
      const server = createMeshServer({
        routes: (router) =>
          router.service(EchoService, {
            ...impl,
            echo(req, ctx) {
              if (req.failCode === FAIL) {
                if (req.failMessage.split(",").includes(r.name)) {
                  throw new ConnectError(`replica ${r.name} is broken`, Code.Unavailable);
                }
                return impl.echo({ ...req, failCode: 0 }, ctx);
              }
              return impl.echo(req, ctx);
            },
          }),
        registration: {
          registry,
          service: "echo",
          instanceId: r.name,
          metadata: { zone: r.zone, version: r.version },
          deregisterDelayMs: 0,
        },
      });
      await server.listen();
      servers.push(server);
    }
  }, 60_000);

  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close()));
  });

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    await rm(dir, { recursive: true, force: true });
  });

  async function open(
    options: Partial<MeshTransportOptions> = {},
    events: MeshTransportEvent[] = [],
  ) {
    const transport = createMeshTransport({
      target: "mesh:///echo",
      registries: [registry],
      logger: false,
      onEvent: (e) => events.push(e),
      ...options,
    });
    transports.push(transport);
    // Wait until all four replicas are resolved, so counts see the whole fleet.
    await waitFor(
      () =>
        events.some((e) => "source" in e && e.source === "balancer" && e.type === "endpoints") &&
        lastSize(events) === FLEET.length,
      20_000,
    );
    return { transport, client: createClient(EchoService, transport), events };
  }

  async function spread(
    client: ReturnType<typeof createClient<typeof EchoService>>,
    calls: number,
    init: { header?: Record<string, string>; fail?: string } = {},
  ) {
    const counts: Record<string, number> = {};
    let failures = 0;
    const served: string[] = [];
    // 4 calls in flight: quicker than one by one, still a steady count.
    let next = 0;
    const worker = async () => {
      while (next < calls) {
        next++;
        try {
          const res = await client.echo(
            init.fail === undefined ? {} : { failCode: FAIL, failMessage: init.fail },
            { timeoutMs: 10_000, ...(init.header === undefined ? {} : { headers: init.header }) },
          );
          counts[res.servedBy] = (counts[res.servedBy] ?? 0) + 1;
          served.push(res.servedBy);
        } catch (e) {
          expect(ConnectError.from(e).code).toBe(Code.Unavailable);
          failures++;
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return { counts, failures, served };
  }

  it("splits calls by registry metadata: 20% to version 1.5.0, the rest to the others", async () => {
    const { client } = await open({ trafficPolicy: CANARY });
    const { counts } = await spread(client, 500);
    // Expected 100 of 500 (binomial sd ~9): a wide band that cannot flake.
    expect(counts.b2 ?? 0).toBeGreaterThanOrEqual(60);
    expect(counts.b2 ?? 0).toBeLessThanOrEqual(140);
    expect((counts.a1 ?? 0) + (counts.a2 ?? 0) + (counts.b1 ?? 0)).toBe(500 - (counts.b2 ?? 0));
  }, 60_000);

  it("routes x-canary: 1 to the 1.5.0 subset only", async () => {
    const { client } = await open({ policy: "round-robin", trafficPolicy: CANARY });
    expect((await spread(client, 60, { header: { "x-canary": "1" } })).counts).toEqual({ b2: 60 });
    const other = await spread(client, 60, { header: { "x-canary": "0" } });
    expect(Object.keys(other.counts).length).toBeGreaterThan(1);
  }, 60_000);

  it("changes at run time: the next calls follow the new policy", async () => {
    const { transport, client, events } = await open({ policy: "round-robin" });
    expect((await spread(client, 80)).counts).toEqual({ a1: 20, a2: 20, b1: 20, b2: 20 });
    transport.setTrafficPolicy({ ...CANARY, subsets: [{ ...CANARY.subsets![0]!, percent: 0 }] });
    const none = await spread(client, 100);
    expect(none.counts.b2).toBeUndefined();
    transport.setTrafficPolicy({ ...CANARY, subsets: [{ ...CANARY.subsets![0]!, percent: 100 }] });
    expect((await spread(client, 100)).counts).toEqual({ b2: 100 });
    expect(() =>
      transport.setTrafficPolicy({ subsets: [{ name: "x", match: {}, percent: 5 }] }),
    ).toThrow(TypeError);
    // The bad policy left the old one in force.
    expect((await spread(client, 20)).counts).toEqual({ b2: 20 });
    transport.setTrafficPolicy(undefined);
    expect(Object.keys((await spread(client, 80)).counts).length).toBeGreaterThan(1);
    expect(trafficEvents(events).filter((e) => e.type === "policy-changed")).toHaveLength(3);
  }, 60_000);

  it("prefers the client's zone, spills over when it loses capacity, fails over when it has none", async () => {
    const { client, events } = await open({
      policy: "round-robin",
      retry: false,
      trafficPolicy: { zoneAware: { zone: "a", minEndpoints: 1 } },
    });
    expect((await spread(client, 100)).counts).toEqual({ a1: 50, a2: 50 });

    // a1 fails: outlier detection ejects it after 5 failures in a row, and
    // zone a keeps 1 of 3 healthy endpoints for half the load: a third spills.
    const ejecting = await spread(client, 60, { fail: "a1" });
    // 5 in a row eject a1; calls already in flight on it may fail too.
    expect(ejecting.failures).toBeGreaterThanOrEqual(5);
    expect(ejecting.failures).toBeLessThanOrEqual(8);
    await waitFor(() => zoneModes(events).includes("spill"));
    const spill = await spread(client, 150, { fail: "a1" });
    expect(spill.failures).toBe(0);
    expect(spill.counts.a1).toBeUndefined();
    // Expected 50 of 150 to zone b: a band that still tells spill from local.
    const toB = (spill.counts.b1 ?? 0) + (spill.counts.b2 ?? 0);
    expect(toB).toBeGreaterThanOrEqual(20);
    expect(toB).toBeLessThanOrEqual(85);

    // a2 fails too: zone a has no healthy endpoint, every call goes to b.
    const second = await spread(client, 60, { fail: "a1,a2" });
    expect(second.failures).toBeGreaterThanOrEqual(5);
    expect(second.failures).toBeLessThanOrEqual(8);
    await waitFor(() => zoneModes(events).includes("failover"));
    const failover = await spread(client, 100, { fail: "a1,a2" });
    expect(failover.failures).toBe(0);
    expect((failover.counts.b1 ?? 0) + (failover.counts.b2 ?? 0)).toBe(100);
    const modes = zoneModes(events);
    expect(modes.indexOf("local")).toBeLessThan(modes.indexOf("spill"));
    expect(modes.indexOf("spill")).toBeLessThan(modes.indexOf("failover"));
  }, 60_000);

  it("ejection works inside a subset: a failing canary sends its calls to the rest", async () => {
    const { client, events } = await open({ retry: false, trafficPolicy: CANARY });
    const canary = { header: { "x-canary": "1" }, fail: "b2" };
    const failing = await spread(client, 30, canary);
    // 5 in a row eject b2; a call may be in flight on it when that happens.
    expect(failing.failures).toBeGreaterThanOrEqual(5);
    expect(failing.failures).toBeLessThanOrEqual(8);
    await waitFor(() =>
      trafficEvents(events).some((e) => e.type === "subset-fallback" && e.subset === "canary"),
    );
    const after = await spread(client, 40, canary);
    expect(after.failures).toBe(0);
    expect(after.counts.b2).toBeUndefined();
    expect(trafficEvents(events).find((e) => e.type === "subset-fallback")).toMatchObject({
      subset: "canary",
      to: "rest",
      target: "mesh:///echo",
    });
  }, 60_000);

  it('a subset with onEmpty "fail" fails its calls with UNAVAILABLE naming it', async () => {
    const { client } = await open({
      retry: false,
      trafficPolicy: {
        subsets: [{ name: "v2", match: { version: "2.0.0" }, onEmpty: "fail" }],
        routes: [{ header: "x-v2", subset: "v2" }],
      },
    });
    const err = await client
      .echo({}, { headers: { "x-v2": "yes" }, timeoutMs: 10_000 })
      .then(() => undefined, ConnectError.from);
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toBe('subset "v2" of target "mesh:///echo" has no ready endpoint');
    // Other calls are untouched.
    expect((await spread(client, 20)).failures).toBe(0);
  }, 60_000);

  it("rejects a bad policy when the transport is built", () => {
    expect(() =>
      createMeshTransport({
        target: "mesh:///echo",
        registries: [registry],
        trafficPolicy: { subsets: [{ name: "c", match: { v: "1" }, percent: 120 }] },
      }),
    ).toThrow(RangeError);
  });
});

function lastSize(events: MeshTransportEvent[]): number | undefined {
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if ("source" in e && e.source === "balancer" && e.type === "endpoints") return e.size;
  }
  return undefined;
}

function trafficEvents(events: MeshTransportEvent[]): TrafficEvent[] {
  return events.filter((e): e is TrafficEvent => "source" in e && e.source === "traffic");
}

function zoneModes(events: MeshTransportEvent[]): string[] {
  return trafficEvents(events).flatMap((e) =>
    e.type === "zone-routing" && e.group === "rest" ? [e.mode] : [],
  );
}
