import { describe, expect, it } from "vitest";
import { createDnsResolver } from "../../src/discovery/dns-resolver.js";
import { parseDnsServer, parseDnsTarget } from "../../src/discovery/dns-target.js";

describe("DNS target parsing", () => {
  it.each([
    ["dns:///orders.internal:50051", { kind: "host", host: "orders.internal", port: 50051 }],
    ["dns:///orders.internal", { kind: "host", host: "orders.internal", port: 443 }],
    ["dns:orders.internal:8080", { kind: "host", host: "orders.internal", port: 8080 }],
    ["dns:///orders.internal.:50051", { kind: "host", host: "orders.internal", port: 50051 }],
    ["dns:///localhost:1", { kind: "host", host: "localhost", port: 1 }],
    ["dns:///10.0.0.1:50051", { kind: "host", host: "10.0.0.1", port: 50051, literal: true }],
    ["dns:///[::1]:50051", { kind: "host", host: "::1", port: 50051, literal: true }],
    ["dns:///[fd00::2]", { kind: "host", host: "fd00::2", port: 443, literal: true }],
    [
      "dns://10.0.0.2:5353/orders.internal:50051",
      { kind: "host", host: "orders.internal", server: { host: "10.0.0.2", port: 5353 } },
    ],
    [
      "dns://10.0.0.2/orders.internal:50051",
      { kind: "host", server: { host: "10.0.0.2", port: 53 } },
    ],
    [
      "dns://[::1]:53/orders:1",
      { kind: "host", host: "orders", server: { host: "::1", port: 53 } },
    ],
    ["dns+srv:///_grpc._tcp.orders.internal", { kind: "srv", name: "_grpc._tcp.orders.internal" }],
    ["dns+srv:_grpc._tcp.orders.internal.", { kind: "srv", name: "_grpc._tcp.orders.internal" }],
    [
      "dns+srv://127.0.0.1:5353/_grpc._tcp.orders",
      { kind: "srv", name: "_grpc._tcp.orders", server: { host: "127.0.0.1", port: 5353 } },
    ],
  ])("parses %s", (target, expected) => {
    expect(parseDnsTarget(target)).toMatchObject(expected);
  });

  it("marks host names as not literal", () => {
    expect(parseDnsTarget("dns:///orders:1")).toMatchObject({ literal: false });
  });

  it.each([
    ["", /scheme must be "dns:" or "dns\+srv:"/],
    ["orders.internal:50051", /scheme/],
    ["http://orders.internal:50051", /scheme/],
    ["DNS:///orders:1", /scheme/],
    ["dns:///:50051", /no host before port in ":50051"/],
    ["dns:///", /no host name/],
    ["dns:", /no host name/],
    ["dns://orders.internal:50051", /expected "\/\/authority\/"/],
    ["dns:///orders.internal:0", /port 0 is not in 1\.\.65535/],
    ["dns:///orders.internal:65536", /port 65536 is not in 1\.\.65535/],
    ["dns:///orders.internal:http", /port "http" is not a number/],
    ["dns:///orders.internal:", /port "" is not a number/],
    ["dns:///::1:50051", /IPv6 addresses in brackets/],
    ["dns:///[orders]:50051", /"orders" in brackets is not an IPv6 address/],
    ["dns:///[::1:50051", /is not \[ipv6\]/],
    ["dns:///orders..internal:1", /empty label/],
    ["dns:///orders internal:1", /label "orders internal" is not letters/],
    ["dns:///-orders.internal:1", /label "-orders" is not letters/],
    [`dns:///${"a".repeat(64)}.internal:1`, /longer than 63 characters/],
    [`dns:///${"abcdefghi.".repeat(26)}x:1`, /longer than 253/],
    ["dns:///orders.internal:1?x=1", /query strings and fragments/],
    ["dns://dns.google/orders:1", /authority "dns.google" is not an IP address/],
    ["dns://10.0.0.2:0/orders:1", /authority "10.0.0.2:0": port 0/],
    ["dns+srv:///_grpc._tcp.orders:50051", /takes no port/],
    ["dns+srv:///[::1]", /takes no port/],
    ["dns+srv:///", /no host name/],
  ])("rejects %j with a TypeError naming the value", (target, message) => {
    expect(() => parseDnsTarget(target)).toThrow(TypeError);
    expect(() => parseDnsTarget(target)).toThrow(message);
    expect(() => parseDnsTarget(target)).toThrow(JSON.stringify(target));
  });

  it.each([
    ["8.8.8.8", { host: "8.8.8.8", port: 53 }],
    ["127.0.0.1:5353", { host: "127.0.0.1", port: 5353 }],
    ["::1", { host: "::1", port: 53 }],
    ["[2001:4860::8888]:1053", { host: "2001:4860::8888", port: 1053 }],
  ])("reads DNS server %s as dns.getServers() writes it", (value, expected) => {
    expect(parseDnsServer(value)).toEqual(expected);
  });

  it.each(["dns.google", "dns.google:53", "1.2.3.4:99999", "[::1", ""])(
    "rejects DNS server %j",
    (value) => {
      expect(parseDnsServer(value)).toBeTypeOf("string");
    },
  );
});

describe("DNS resolver options", () => {
  const target = "dns:///orders.internal:50051";
  const servers = ["127.0.0.1:53"];

  it("rejects a bad target with a TypeError before any query", () => {
    expect(() => createDnsResolver({ target: "dns:///:50051", servers })).toThrow(TypeError);
  });

  it.each([
    [{ minPollMs: 0 }, /minPollMs 0 must be/],
    [{ minPollMs: Number.NaN }, /minPollMs NaN must be/],
    [{ minPollMs: 100, maxPollMs: 99 }, /maxPollMs 99 must be .* >= minPollMs 100/],
    [{ maxPollMs: Number.POSITIVE_INFINITY }, /maxPollMs Infinity/],
    [{ retryInitialMs: 0 }, /retryInitialMs 0 must be > 0/],
    [{ minPollMs: 500, retryInitialMs: 501 }, /retryInitialMs 501 must be .* <= minPollMs 500/],
    [{ minResolveIntervalMs: -1 }, /minResolveIntervalMs -1/],
    [{ timeoutMs: 0 }, /timeoutMs 0 must be/],
    [{ attempts: 0 }, /attempts 0 must be an integer >= 1/],
    [{ attempts: 1.5 }, /attempts 1.5/],
    [{ servers: [] }, /servers \[\] must list at least one/],
    [{ servers: ["dns.google"] }, /DNS server "dns.google" is not an IP address/],
  ])("rejects %j with a RangeError quoting the value", (options, message) => {
    expect(() => createDnsResolver({ target, servers, ...options })).toThrow(RangeError);
    expect(() => createDnsResolver({ target, servers, ...options })).toThrow(message);
  });
});
