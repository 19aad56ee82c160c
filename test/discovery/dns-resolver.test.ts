import type { Socket } from "node:dgram";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DnsQueryError } from "../../src/discovery/dns-client.js";
import { createDnsResolver, type DnsResolverOptions } from "../../src/discovery/dns-resolver.js";
import type { EndpointSet } from "../../src/discovery/endpoint.js";
import type { Resolver, ResolverEvent } from "../../src/discovery/resolver.js";
import { createFakeClock, type FakeClock } from "../../src/testing/fake-clock.js";
import { startDnsServer, type TestDnsServer } from "../support/dns-server.js";
import { waitFor } from "../support/wait-for.js";

// Every UDP socket made in this file (client and test server), so tests can
// check that close() released the resolver's sockets: they are unref'd, so
// process.getActiveResourcesInfo() would not show a leak.
const sockets = vi.hoisted(() => ({ open: new Set<unknown>() }));
vi.mock("node:dgram", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:dgram")>();
  const createSocket = ((...args: Parameters<typeof real.createSocket>) => {
    const s: Socket = real.createSocket(...args);
    sockets.open.add(s);
    s.on("close", () => sockets.open.delete(s));
    return s;
  }) as typeof real.createSocket;
  return { ...real, createSocket, default: { ...real, createSocket } };
});

/**
 * quiet lets loopback traffic that should NOT happen show up before a test
 * asserts it did not. Loopback UDP answers in well under a millisecond; a
 * loaded machine could only make a wrong resolver look right, never the
 * reverse.
 */
const quiet = (ms = 30) => new Promise((r) => setTimeout(r, ms));

function recorder() {
  const updates: EndpointSet[] = [];
  const events: ResolverEvent[] = [];
  return {
    updates,
    events,
    listener: {
      onUpdate: (set: EndpointSet) => updates.push(set),
      onEvent: (event: ResolverEvent) => events.push(event),
    },
    addresses: () => updates.at(-1)?.endpoints.map((e) => e.address),
    weighted: () => updates.at(-1)?.endpoints.map((e) => [e.address, e.weight]),
    ofType: <T extends ResolverEvent["type"]>(type: T) =>
      events.filter((e): e is Extract<ResolverEvent, { type: T }> => e.type === type),
  };
}

let dns: TestDnsServer;
let resolvers: Resolver[] = [];
beforeEach(async () => {
  dns = await startDnsServer();
  // An empty answer's negative TTL would otherwise bound every poll.
  dns.negativeTtl = 3600;
});
afterEach(async () => {
  await Promise.all(resolvers.map((r) => r.close()));
  resolvers = [];
  await dns.close();
});

function resolve(
  target: string,
  options: Partial<DnsResolverOptions> = {},
): { resolver: Resolver; rec: ReturnType<typeof recorder> } {
  const resolver = createDnsResolver({ target, servers: [dns.server], ...options });
  resolvers.push(resolver);
  const rec = recorder();
  resolver.start(rec.listener);
  return { resolver, rec };
}

/** fakeTime runs scheduling on a fake clock; queries still travel over loopback. */
function fakeTime(): FakeClock {
  return createFakeClock();
}

describe("DNS resolver: A and AAAA targets", () => {
  it("resolves DNS A records to ip:port endpoints", async () => {
    dns.setA("orders.internal", ["10.0.0.2", "10.0.0.1"], 30);
    const { rec } = resolve("dns:///orders.internal:50051");
    await waitFor(() => rec.updates.length === 1);
    expect(rec.weighted()).toEqual([
      ["10.0.0.1:50051", 1],
      ["10.0.0.2:50051", 1],
    ]);
    expect(rec.updates[0]?.staleSince).toBeUndefined();
    expect(Object.isFrozen(rec.updates[0]?.endpoints)).toBe(true);
    expect(rec.events).toEqual([]);
  });

  it("asks the DNS server named in the target's authority, with port 443 by default", async () => {
    dns.setA("orders.internal", ["10.0.0.1"], 30);
    // 192.0.2.1 is TEST-NET-1: were it asked, the test would time out.
    const { rec } = resolve(`dns://${dns.server}/orders.internal`, { servers: ["192.0.2.1"] });
    await waitFor(() => rec.updates.length === 1);
    expect(rec.addresses()).toEqual(["10.0.0.1:443"]);
  });

  it("brackets DNS AAAA addresses", async () => {
    dns.setA("dual.internal", ["10.0.0.1"], 30);
    dns.setAAAA("dual.internal", ["fd00::1", "::1"], 30);
    const { rec } = resolve("dns:///dual.internal:50051");
    await waitFor(() => rec.updates.length === 1);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051", "[::1]:50051", "[fd00::1]:50051"]);
  });

  it("pushes an IP-literal target once without any DNS query", async () => {
    const { rec, resolver } = resolve("dns:///[::1]:50051");
    await waitFor(() => rec.updates.length === 1);
    resolver.resolveNow?.();
    await quiet();
    expect(rec.addresses()).toEqual(["[::1]:50051"]);
    expect(rec.updates).toHaveLength(1);
    expect(dns.queries).toEqual([]);
  });

  it("skips unusable DNS addresses with a bad-record event", async () => {
    dns.setA("odd.internal", ["10.0.0.1", "0.0.0.0", "239.1.1.1"], 30);
    const { rec } = resolve("dns:///odd.internal:50051");
    await waitFor(() => rec.updates.length === 1);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051"]);
    expect(rec.ofType("bad-record")).toEqual([
      {
        type: "bad-record",
        target: "dns:///odd.internal:50051",
        record: "odd.internal 30 IN A 0.0.0.0",
        reason: "unspecified address",
      },
      {
        type: "bad-record",
        target: "dns:///odd.internal:50051",
        record: "odd.internal 30 IN A 239.1.1.1",
        reason: "multicast address",
      },
    ]);
  });
});

describe("DNS resolver: polling", () => {
  it("re-resolves on the DNS TTL poll and sees a scale-up without any failure", async () => {
    dns.setA("orders.internal", ["10.0.0.1"], 0);
    const { rec } = resolve("dns:///orders.internal:50051", {
      minPollMs: 50,
      retryInitialMs: 50,
    });
    await waitFor(() => rec.updates.length === 1);
    dns.setA("orders.internal", ["10.0.0.1", "10.0.0.2"], 0);
    // Nothing failed and nobody called resolveNow(): only the poll can see it.
    await waitFor(() => rec.updates.length === 2, 10_000);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051", "10.0.0.2:50051"]);
    expect(rec.ofType("error")).toEqual([]);
  });

  it("polls DNS after the smallest record TTL when it is above the floor", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 10);
    const { rec } = resolve("dns:///orders.internal:50051", { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    expect(dns.count("orders.internal")).toBe(2); // A and AAAA
    dns.setA("orders.internal", ["10.0.0.1", "10.0.0.2"], 10);
    clock.advance(9_999);
    await quiet();
    expect(dns.count("orders.internal")).toBe(2);
    clock.advance(1);
    await waitFor(() => rec.updates.length === 2);
    expect(dns.count("orders.internal")).toBe(4);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051", "10.0.0.2:50051"]);
  });

  it("never polls DNS sooner than minPollMs, even when the TTL is smaller", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 1);
    const { rec } = resolve("dns:///orders.internal:50051", { clock, minPollMs: 5_000 });
    await waitFor(() => rec.updates.length === 1);
    clock.advance(4_999);
    await quiet();
    expect(dns.count("orders.internal")).toBe(2);
    clock.advance(1);
    await waitFor(() => dns.count("orders.internal") === 4);
  });

  it("polls DNS at least every maxPollMs, even when the TTL is larger", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 86_400);
    const { rec } = resolve("dns:///orders.internal:50051", {
      clock,
      minPollMs: 1_000,
      maxPollMs: 10_000,
    });
    await waitFor(() => rec.updates.length === 1);
    clock.advance(9_999);
    await quiet();
    expect(dns.count("orders.internal")).toBe(2);
    clock.advance(1);
    await waitFor(() => dns.count("orders.internal") === 4);
  });

  it("pushes no new snapshot when DNS answers the same endpoints", async () => {
    dns.setA("orders.internal", ["10.0.0.1", "10.0.0.2"], 0);
    const { rec } = resolve("dns:///orders.internal:50051", { minPollMs: 10, retryInitialMs: 10 });
    await waitFor(() => rec.updates.length === 1);
    dns.setA("orders.internal", ["10.0.0.2", "10.0.0.1"], 0); // same set, other order
    await waitFor(() => dns.count("orders.internal") >= 8, 10_000);
    expect(rec.updates).toHaveLength(1);
  });

  it("rate-limits DNS resolveNow() to one resolution per minResolveIntervalMs", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 60);
    const { rec, resolver } = resolve("dns:///orders.internal:50051", {
      clock,
      minResolveIntervalMs: 1_000,
    });
    await waitFor(() => rec.updates.length === 1);
    dns.setA("orders.internal", ["10.0.0.1", "10.0.0.2"], 60);
    resolver.resolveNow?.();
    resolver.resolveNow?.();
    resolver.resolveNow?.();
    clock.advance(999);
    await quiet();
    expect(dns.count("orders.internal")).toBe(2);
    // The calls were coalesced into one resolution at the end of the interval.
    clock.advance(1);
    await waitFor(() => rec.updates.length === 2);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051", "10.0.0.2:50051"]);
    expect(dns.count("orders.internal")).toBe(4);
    // Once the interval has passed, resolveNow() resolves at once.
    clock.advance(5_000);
    resolver.resolveNow?.();
    await waitFor(() => dns.count("orders.internal") === 6);
    // And calls during that resolution are absorbed by it.
    resolver.resolveNow?.();
    await quiet();
    expect(dns.count("orders.internal")).toBe(6);
  });
});

describe("DNS resolver: answers and failures", () => {
  it("pushes an empty set on DNS NXDOMAIN: an answer, not an error", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 1);
    const { rec } = resolve("dns:///orders.internal:50051", { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    dns.negativeTtl = 1; // RFC 2308: an NXDOMAIN is cached for its SOA's negative TTL
    dns.remove("orders.internal");
    clock.advance(1_000);
    await waitFor(() => rec.updates.length === 2);
    expect(rec.addresses()).toEqual([]);
    expect(rec.events).toEqual([]);
    // Polling goes on: the name may come back.
    dns.setA("orders.internal", ["10.0.0.3"], 1);
    clock.advance(1_000);
    await waitFor(() => rec.updates.length === 3);
    expect(rec.addresses()).toEqual(["10.0.0.3:50051"]);
  });

  it("pushes an empty set when DNS answers NOERROR with no records", async () => {
    dns.setA("orders.internal", [], 30);
    const { rec } = resolve("dns:///orders.internal:50051");
    await waitFor(() => rec.updates.length === 1);
    expect(rec.addresses()).toEqual([]);
    expect(rec.events).toEqual([]);
  });

  it("keeps the last-known endpoints on DNS SERVFAIL, emits stale, and backs off", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 1);
    const target = "dns:///orders.internal:50051";
    const { rec } = resolve(target, {
      clock,
      minPollMs: 1_000,
      retryInitialMs: 100,
      random: () => 1,
    });
    await waitFor(() => rec.updates.length === 1);

    dns.behave("orders.internal", "servfail");
    clock.advance(1_000);
    await waitFor(() => rec.ofType("error").length === 1);
    expect(rec.updates).toHaveLength(1);
    const error = rec.ofType("error")[0]?.error;
    expect(error).toBeInstanceOf(DnsQueryError);
    expect(error).toMatchObject({ code: "SERVFAIL" });
    expect(rec.ofType("stale")).toEqual([{ type: "stale", target, sinceMs: 1_000 }]);

    // Retries: 100 ms, then 200 ms (random() = 1 takes the whole backoff cap).
    const queries = dns.count("orders.internal");
    clock.advance(99);
    await quiet();
    expect(dns.count("orders.internal")).toBe(queries);
    clock.advance(1);
    await waitFor(() => rec.ofType("error").length === 2);
    clock.advance(200);
    await waitFor(() => rec.ofType("error").length === 3);
    expect(rec.ofType("stale").map((e) => e.sinceMs)).toEqual([1_000, 1_000, 1_000]);
    expect(rec.updates).toHaveLength(1);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051"]);

    // Recovery: the next retry sees the new answer.
    dns.behave("orders.internal", "answer");
    dns.setA("orders.internal", ["10.0.0.1", "10.0.0.2"], 1);
    clock.advance(400);
    await waitFor(() => rec.updates.length === 2);
    expect(rec.addresses()).toEqual(["10.0.0.1:50051", "10.0.0.2:50051"]);
    expect(rec.updates[1]?.staleSince).toBeUndefined();
  });

  it("keeps the last-known endpoints when DNS times out, after one retry per query", async () => {
    const clock = fakeTime();
    dns.setA("orders.internal", ["10.0.0.1"], 1);
    const { rec } = resolve("dns:///orders.internal:50051", {
      clock,
      minPollMs: 1_000,
      timeoutMs: 500,
    });
    await waitFor(() => rec.updates.length === 1);
    dns.behave("orders.internal", "timeout");
    clock.advance(1_000);
    await waitFor(() => dns.count("orders.internal") === 4); // first attempts, A and AAAA
    clock.advance(500);
    await waitFor(() => dns.count("orders.internal") === 6); // the retries
    expect(rec.ofType("error")).toEqual([]);
    clock.advance(500);
    await waitFor(() => rec.ofType("error").length === 1);
    expect(rec.ofType("error")[0]?.error).toMatchObject({ code: "TIMEOUT" });
    expect(rec.ofType("stale")).toHaveLength(1);
    expect(rec.updates).toHaveLength(1);
  });

  it("pushes nothing when the first DNS resolution fails, and no stale event", async () => {
    const clock = fakeTime();
    dns.behave("*", "servfail");
    const { rec } = resolve("dns:///orders.internal:50051", { clock });
    await waitFor(() => rec.ofType("error").length === 1);
    expect(rec.updates).toEqual([]);
    expect(rec.ofType("stale")).toEqual([]);
  });
});

describe("DNS resolver: SRV targets", () => {
  const target = "dns+srv:///_grpc._tcp.orders.internal";
  const srvName = "_grpc._tcp.orders.internal";

  it("uses the lowest DNS SRV priority and its weights, 0 becoming 1", async () => {
    dns.setSrv(
      srvName,
      [
        { priority: 20, weight: 9, port: 5003, target: "c.orders.internal" },
        { priority: 10, weight: 5, port: 5001, target: "a.orders.internal" },
        { priority: 10, weight: 0, port: 5002, target: "b.orders.internal." },
      ],
      30,
    );
    dns.setA("a.orders.internal", ["10.0.0.1"], 30);
    dns.setA("b.orders.internal", ["10.0.0.2"], 30);
    dns.setAAAA("b.orders.internal", ["fd00::2"], 30);
    dns.setA("c.orders.internal", ["10.0.0.3"], 30);
    const { rec } = resolve(target);
    await waitFor(() => rec.updates.length === 1);
    expect(rec.weighted()).toEqual([
      ["10.0.0.1:5001", 5],
      ["10.0.0.2:5002", 1],
      ["[fd00::2]:5002", 1],
    ]);
    // A lower-priority group is looked up only when needed.
    expect(dns.count("c.orders.internal")).toBe(0);
    expect(rec.events).toEqual([]);
  });

  it("falls back to the next DNS SRV priority when a group resolves to nothing", async () => {
    dns.setSrv(
      srvName,
      [
        { priority: 10, weight: 5, port: 5001, target: "gone.orders.internal" },
        { priority: 20, weight: 3, port: 5003, target: "c.orders.internal" },
      ],
      30,
    );
    dns.setA("c.orders.internal", ["10.0.0.3"], 30);
    const { rec } = resolve(target);
    await waitFor(() => rec.updates.length === 1);
    expect(rec.weighted()).toEqual([["10.0.0.3:5003", 3]]);
    expect(rec.ofType("bad-record")).toEqual([
      {
        type: "bad-record",
        target,
        record: `${srvName} 30 IN SRV 10 5 5001 gone.orders.internal.`,
        reason: "target gone.orders.internal has no A or AAAA records",
      },
    ]);
  });

  it("adds the weights of DNS SRV records that reach the same address", async () => {
    dns.setSrv(
      srvName,
      [
        { priority: 0, weight: 3, port: 5001, target: "a.orders.internal" },
        { priority: 0, weight: 4, port: 5001, target: "alias.orders.internal" },
        { priority: 0, weight: 4, port: 5002, target: "a.orders.internal" },
      ],
      30,
    );
    dns.setA("a.orders.internal", ["10.0.0.1"], 30);
    dns.setA("alias.orders.internal", ["10.0.0.1"], 30);
    const { rec } = resolve(target);
    await waitFor(() => rec.updates.length === 1);
    expect(rec.weighted()).toEqual([
      ["10.0.0.1:5001", 7],
      ["10.0.0.1:5002", 4],
    ]);
  });

  it('pushes an empty set for DNS SRV target "." (service decidedly not available)', async () => {
    const clock = fakeTime();
    dns.setSrv(srvName, [{ priority: 0, weight: 0, port: 5001, target: "a.orders.internal" }], 1);
    dns.setA("a.orders.internal", ["10.0.0.1"], 1);
    const { rec } = resolve(target, { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    dns.setSrv(srvName, [{ priority: 0, weight: 0, port: 0, target: "." }], 1);
    clock.advance(1_000);
    await waitFor(() => rec.updates.length === 2);
    expect(rec.addresses()).toEqual([]);
    expect(rec.events).toEqual([]);
  });

  it("pushes a new snapshot when only a DNS SRV weight changes", async () => {
    const clock = fakeTime();
    dns.setSrv(srvName, [{ priority: 0, weight: 5, port: 5001, target: "a.orders.internal" }], 1);
    dns.setA("a.orders.internal", ["10.0.0.1"], 1);
    const { rec } = resolve(target, { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    dns.setSrv(srvName, [{ priority: 0, weight: 7, port: 5001, target: "a.orders.internal" }], 1);
    clock.advance(1_000);
    await waitFor(() => rec.updates.length === 2);
    expect(rec.weighted()).toEqual([["10.0.0.1:5001", 7]]);
  });

  it("polls DNS SRV after the smallest TTL of the SRV and address records", async () => {
    const clock = fakeTime();
    dns.setSrv(srvName, [{ priority: 0, weight: 1, port: 5001, target: "a.orders.internal" }], 60);
    dns.setA("a.orders.internal", ["10.0.0.1"], 5);
    const { rec } = resolve(target, { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    clock.advance(4_999);
    await quiet();
    expect(dns.count(srvName)).toBe(1);
    clock.advance(1);
    await waitFor(() => dns.count(srvName) === 2);
  });

  it("skips a DNS SRV record with port 0 with a bad-record event", async () => {
    dns.setSrv(
      srvName,
      [
        { priority: 0, weight: 1, port: 0, target: "a.orders.internal" },
        { priority: 0, weight: 1, port: 5002, target: "b.orders.internal" },
      ],
      30,
    );
    dns.setA("a.orders.internal", ["10.0.0.1"], 30);
    dns.setA("b.orders.internal", ["10.0.0.2"], 30);
    const { rec } = resolve(target);
    await waitFor(() => rec.updates.length === 1);
    expect(rec.addresses()).toEqual(["10.0.0.2:5002"]);
    expect(rec.ofType("bad-record")).toEqual([
      {
        type: "bad-record",
        target,
        record: `${srvName} 30 IN SRV 0 1 0 a.orders.internal.`,
        reason: "port 0 is not in 1..65535",
      },
    ]);
  });

  it("keeps the last-known endpoints when a DNS SRV target's lookup fails", async () => {
    const clock = fakeTime();
    dns.setSrv(
      srvName,
      [
        { priority: 0, weight: 1, port: 5001, target: "a.orders.internal" },
        { priority: 0, weight: 1, port: 5002, target: "b.orders.internal" },
      ],
      1,
    );
    dns.setA("a.orders.internal", ["10.0.0.1"], 1);
    dns.setA("b.orders.internal", ["10.0.0.2"], 1);
    const { rec } = resolve(target, { clock, minPollMs: 1_000 });
    await waitFor(() => rec.updates.length === 1);
    dns.behave("b.orders.internal", "servfail");
    clock.advance(1_000);
    await waitFor(() => rec.ofType("error").length === 1);
    // Not a partial set with only a: the outage is reported, nothing pushed.
    expect(rec.updates).toHaveLength(1);
    expect(rec.addresses()).toEqual(["10.0.0.1:5001", "10.0.0.2:5002"]);
    expect(rec.ofType("stale")).toHaveLength(1);
  });
});

describe("DNS resolver: lifecycle", () => {
  it("close() stops DNS polling and closes its sockets", async () => {
    const baseline = sockets.open.size; // the test server's socket
    dns.setA("orders.internal", ["10.0.0.1"], 0);
    const { rec, resolver } = resolve("dns:///orders.internal:50051", {
      minPollMs: 10,
      retryInitialMs: 10,
    });
    await waitFor(() => dns.count("orders.internal") >= 4);
    await resolver.close();
    const queries = dns.count("orders.internal");
    await quiet(60);
    expect(dns.count("orders.internal")).toBe(queries);
    expect(sockets.open.size).toBe(baseline);
    expect(rec.updates).toHaveLength(1);
  });

  it("close() during a DNS query aborts it, frees its timers and sockets, and reports nothing", async () => {
    const clock = fakeTime();
    const baseline = sockets.open.size;
    dns.behave("*", "timeout");
    const { rec, resolver } = resolve("dns:///orders.internal:50051", { clock });
    await waitFor(() => dns.count("orders.internal") === 2);
    expect(sockets.open.size).toBe(baseline + 2);
    await resolver.close();
    // close() has closed the sockets; dgram emits "close" on the next tick.
    await new Promise((r) => setImmediate(r));
    expect(sockets.open.size).toBe(baseline);
    expect(clock.pendingTimers).toBe(0);
    expect(rec.events).toEqual([]);
    expect(rec.updates).toEqual([]);
    await resolver.close(); // idempotent
  });

  it("refuses to start a DNS resolver twice or after close()", async () => {
    dns.setA("orders.internal", ["10.0.0.1"], 30);
    const { resolver } = resolve("dns:///orders.internal:50051");
    expect(() => resolver.start(recorder().listener)).toThrow(/already started/);
    const other = createDnsResolver({ target: "dns:///orders:1", servers: [dns.server] });
    await other.close();
    expect(() => other.start(recorder().listener)).toThrow(/closed/);
  });
});
