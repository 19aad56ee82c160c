import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDnsClient, DnsQueryError } from "../../src/discovery/dns-client.js";
import { startDnsServer, type TestDnsServer } from "../support/dns-server.js";

describe("DNS client over UDP", () => {
  let dns: TestDnsServer;
  beforeAll(async () => {
    dns = await startDnsServer();
  });
  afterAll(async () => {
    await dns.close();
  });

  it("returns A, AAAA and SRV records with their TTLs", async () => {
    dns.setA("a.client.test", ["10.0.0.1", "10.0.0.2"], 42);
    dns.setAAAA("a.client.test", ["fd00::1"], 7);
    dns.setSrv(
      "_grpc._tcp.client.test",
      [{ priority: 1, weight: 2, port: 3, target: "a.client.test" }],
      9,
    );
    const client = createDnsClient({ servers: [dns.server] });
    const a = await client.query("a.client.test", "A");
    expect(a).toMatchObject({ rcode: "NOERROR", ttlSeconds: 42 });
    expect(a.records.map((r) => (r.type === "A" ? r.address : r.type))).toEqual([
      "10.0.0.1",
      "10.0.0.2",
    ]);
    const aaaa = await client.query("a.client.test.", "AAAA");
    expect(aaaa.records).toEqual([
      { type: "AAAA", name: "a.client.test", ttl: 7, address: "fd00::1" },
    ]);
    const srv = await client.query("_grpc._tcp.client.test", "SRV");
    expect(srv).toMatchObject({ ttlSeconds: 9 });
    expect(srv.records).toEqual([
      {
        type: "SRV",
        name: "_grpc._tcp.client.test",
        ttl: 9,
        priority: 1,
        weight: 2,
        port: 3,
        target: "a.client.test",
      },
    ]);
  });

  it("treats NXDOMAIN and an empty NOERROR as answers with the SOA's negative TTL", async () => {
    dns.negativeTtl = 5;
    dns.setA("v4only.client.test", ["10.0.0.9"], 60);
    const client = createDnsClient({ servers: [dns.server] });
    await expect(client.query("missing.client.test", "A")).resolves.toEqual({
      rcode: "NXDOMAIN",
      records: [],
      ttlSeconds: 5,
    });
    await expect(client.query("v4only.client.test", "AAAA")).resolves.toEqual({
      rcode: "NOERROR",
      records: [],
      ttlSeconds: 5,
    });
    dns.negativeTtl = 1;
  });

  it("retries a DNS SERVFAIL once, then rejects with its rcode", async () => {
    dns.setA("broken.client.test", ["10.0.0.1"], 60);
    dns.behave("broken.client.test", "servfail");
    const client = createDnsClient({ servers: [dns.server] });
    const before = dns.count("broken.client.test");
    const error = await client.query("broken.client.test", "A").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DnsQueryError);
    expect(error).toMatchObject({ code: "SERVFAIL" });
    expect(String((error as Error).message)).toMatch(
      /A broken\.client\.test from 127\.0\.0\.1:\d+/,
    );
    expect(dns.count("broken.client.test") - before).toBe(2);
  });

  it("times out an unanswered DNS query after each attempt's timeoutMs", async () => {
    dns.behave("slow.client.test", "timeout");
    const client = createDnsClient({ servers: [dns.server], timeoutMs: 40, attempts: 2 });
    const startedAt = performance.now();
    const error = await client.query("slow.client.test", "A").catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "TIMEOUT" });
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(75);
    expect(dns.count("slow.client.test")).toBe(2);
  });

  // The first attempt must time out, the second must not: a timeout long
  // enough for a loaded machine to answer on loopback.
  it("rotates DNS attempts through the servers", async () => {
    const other = await startDnsServer();
    try {
      other.setA("rotate.client.test", ["10.1.1.1"], 60);
      dns.behave("rotate.client.test", "timeout");
      const client = createDnsClient({ servers: [dns.server, other.server], timeoutMs: 200 });
      const answer = await client.query("rotate.client.test", "A");
      expect(answer.records).toHaveLength(1);
      expect(dns.count("rotate.client.test")).toBe(1);
      expect(other.count("rotate.client.test")).toBe(1);
    } finally {
      await other.close();
    }
  });

  it("retries a truncated DNS answer over TCP", async () => {
    dns.setA("big.client.test", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], 60);
    dns.truncate = true;
    try {
      const client = createDnsClient({ servers: [dns.server] });
      const answer = await client.query("big.client.test", "A");
      expect(answer.records).toHaveLength(3);
      const transports = dns.queries
        .filter((q) => q.name === "big.client.test")
        .map((q) => q.transport);
      expect(transports).toEqual(["udp", "tcp"]);
    } finally {
      dns.truncate = false;
    }
  });

  it("rejects DNS queries in flight when closed, and new ones after", async () => {
    dns.behave("hang.client.test", "timeout");
    const client = createDnsClient({ servers: [dns.server], timeoutMs: 10_000 });
    const pending = client.query("hang.client.test", "A");
    client.close();
    await expect(pending).rejects.toMatchObject({ code: "CLOSED" });
    await expect(client.query("a.client.test", "A")).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("rejects when the caller's signal aborts", async () => {
    dns.behave("hang.client.test", "timeout");
    const client = createDnsClient({ servers: [dns.server], timeoutMs: 10_000 });
    const controller = new AbortController();
    const pending = client.query("hang.client.test", "A", controller.signal);
    controller.abort(new Error("caller gave up"));
    await expect(pending).rejects.toThrow("caller gave up");
  });
});
