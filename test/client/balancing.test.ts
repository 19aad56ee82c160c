import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createEndpoint,
  createEndpointSet,
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransportEvent,
  type Resolver,
  type ResolverListener,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

/** A resolver the test drives by hand. */
function manualResolver(): Resolver & { push(addresses: string[]): void } {
  let listener: ResolverListener | undefined;
  return {
    start(l) {
      listener = l;
    },
    push(addresses) {
      listener?.onUpdate(
        createEndpointSet(
          addresses.map((a) => createEndpoint(a)),
          performance.now(),
        ),
      );
    },
    close() {},
  };
}

describe("client-side load balancing over real servers", () => {
  const servers: MeshServer[] = [];
  const addresses: string[] = [];
  let failing: string;
  beforeAll(async () => {
    for (const name of ["a", "b", "c"]) {
      const impl = createEchoImpl(name);
      const server = createMeshServer({
        routes: (r) =>
          r.service(EchoService, {
            ...impl,
            echo(req, ctx) {
              if (name === "c" && req.failCode === 99) {
                throw new ConnectError("replica c is broken", Code.Unavailable);
              }
              return impl.echo({ ...req, failCode: req.failCode === 99 ? 0 : req.failCode }, ctx);
            },
          }),
      });
      servers.push(server);
      addresses.push((await server.listen()).address);
    }
    failing = addresses[2] as string;
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
  });

  async function spread(policy: "round-robin" | "p2c-ewma" | "pick-first", calls: number) {
    const transport = createMeshTransport({ target: `static:///${addresses.join(",")}`, policy });
    const client = createClient(EchoService, transport);
    const counts: Record<string, number> = {};
    for (let i = 0; i < calls; i++) {
      const res = await client.echo({});
      counts[res.servedBy] = (counts[res.servedBy] ?? 0) + 1;
    }
    await transport.close();
    return counts;
  }

  it("round-robin spreads calls evenly over a static target of 3 endpoints", async () => {
    expect(await spread("round-robin", 30)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it("p2c-ewma reaches every endpoint of a static target", async () => {
    const counts = await spread("p2c-ewma", 90);
    expect(Object.keys(counts).sort()).toEqual(["a", "b", "c"]);
  });

  it("pick-first sends every call to the first endpoint", async () => {
    expect(await spread("pick-first", 10)).toEqual({ a: 10 });
  });

  it("outlier detection ejects an endpoint after 5 consecutive UNAVAILABLE and reports it", async () => {
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: `static:///${addresses.join(",")}`,
      policy: "round-robin",
      // Retries would hide the failures from this count: ejection alone is under test.
      retry: false,
      onEvent: (e) => events.push(e),
    });
    const client = createClient(EchoService, transport);
    let failures = 0;
    const served: string[] = [];
    for (let i = 0; i < 60; i++) {
      try {
        served.push((await client.echo({ failCode: 99 })).servedBy);
      } catch (e) {
        expect(ConnectError.from(e).code).toBe(Code.Unavailable);
        failures++;
      }
    }
    expect(failures).toBe(5);
    expect(served.slice(-20).every((s) => s !== "c")).toBe(true);
    const ejected = events.find(
      (e) => "source" in e && e.source === "outlier" && e.type === "ejected",
    );
    expect(ejected).toMatchObject({ address: failing, reason: "consecutive-failures" });
    await transport.close();
  });

  it("a custom Resolver feeds endpoints; a removed endpoint's in-flight call still completes", async () => {
    const resolver = manualResolver();
    const transport = createMeshTransport({
      target: "custom:///echo",
      resolver,
      policy: "pick-first",
    });
    const client = createClient(EchoService, transport);
    resolver.push([addresses[0] as string]);
    const slow = client.echo({ delayMs: 300, payload: new Uint8Array([4]) });
    await new Promise((r) => setTimeout(r, 50));
    resolver.push([addresses[1] as string]);
    const after = await client.echo({});
    expect(after.servedBy).toBe("b");
    expect([...(await slow).payload]).toEqual([4]);
    await transport.close();
  });

  it("waits for the first resolution, then sends the call", async () => {
    const resolver = manualResolver();
    const transport = createMeshTransport({ target: "custom:///later", resolver });
    const call = createClient(EchoService, transport).echo({}, { timeoutMs: 2000 });
    setTimeout(() => resolver.push([addresses[1] as string]), 100);
    expect((await call).servedBy).toBe("b");
    await transport.close();
  });

  it("fails with UNAVAILABLE naming the target when no resolution arrives before the deadline", async () => {
    const transport = createMeshTransport({
      target: "custom:///never",
      resolver: manualResolver(),
    });
    const started = performance.now();
    const err = await createClient(EchoService, transport)
      .echo({}, { timeoutMs: 200 })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("custom:///never"),
    });
    expect(performance.now() - started).toBeGreaterThan(150);
    await transport.close();
  });

  it("fails at once with UNAVAILABLE when the resolver returns no endpoints", async () => {
    const resolver = manualResolver();
    const transport = createMeshTransport({ target: "custom:///empty", resolver });
    resolver.push([]);
    await expect(
      createClient(EchoService, transport).echo({}, { timeoutMs: 5000 }),
    ).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: expect.stringContaining("no endpoints"),
    });
    await transport.close();
  });

  it("keeps a removed endpoint in use while it answers, and lets it go when its server closes", async () => {
    const pair: MeshServer[] = [];
    const pairAddresses: string[] = [];
    for (const name of ["x", "y"]) {
      const server = createMeshServer({
        routes: (r) => r.service(EchoService, createEchoImpl(name)),
        logger: false,
      });
      pair.push(server);
      pairAddresses.push((await server.listen()).address);
    }
    const [x, y] = pairAddresses as [string, string];
    const resolver = manualResolver();
    const events: MeshTransportEvent[] = [];
    const transport = createMeshTransport({
      target: "custom:///pair",
      resolver,
      policy: "round-robin",
      logger: false,
      onEvent: (e) => events.push(e),
    });
    const client = createClient(EchoService, transport);
    resolver.push([x, y]);
    const servedBy = async (n: number) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) out.push((await client.echo({})).servedBy);
      return out;
    };
    expect(new Set(await servedBy(6))).toEqual(new Set(["x", "y"]));

    // The resolver drops x while x still answers: it stays in use (held).
    resolver.push([y]);
    expect(await servedBy(6)).toContain("x");
    const balancerEvents = () =>
      events.filter(
        (e): e is MeshTransportEvent & { source: "balancer"; type: string } =>
          "source" in e && e.source === "balancer",
      );
    expect(balancerEvents().map((e) => e.type)).toContain("removal-held");

    // x shuts down: its connection closes and the removal applies at once.
    await pair[0]?.close({ graceMs: 0 });
    const after = await servedBy(6);
    expect(after.filter((s) => s === "x")).toEqual([]);
    expect(balancerEvents()).toContainEqual(
      expect.objectContaining({ type: "removal-applied", address: x, reason: "dead" }),
    );
    await transport.close();
    await pair[1]?.close({ graceMs: 0 });
  });

  it("rejects an unknown target scheme when built, naming it", () => {
    expect(() => createMeshTransport({ target: "zk:///orders" })).toThrow(/unknown scheme "zk"/);
  });
});
