import { describe, expect, it } from "vitest";
import {
  formatSrvRecord,
  groupSrvByPriority,
  type SrvRecord,
  srvEndpointWeight,
} from "../../src/discovery/dns-srv.js";

const srv = (priority: number, weight: number, target: string): SrvRecord => ({
  type: "SRV",
  name: "_grpc._tcp.x",
  ttl: 30,
  priority,
  weight,
  port: 5000,
  target,
});

describe("DNS SRV decisions", () => {
  it.each([
    [0, 1],
    [1, 1],
    [7, 7],
    [65535, 65535],
  ])("maps DNS SRV weight %i to endpoint weight %i", (weight, expected) => {
    expect(srvEndpointWeight(weight)).toBe(expected);
  });

  it("groups DNS SRV records by priority, lowest first, without '.' targets", () => {
    const groups = groupSrvByPriority([
      srv(20, 1, "c"),
      srv(10, 1, "a"),
      srv(5, 0, "."),
      srv(10, 2, "b"),
      srv(65535, 1, "z"),
    ]);
    expect(groups.map((g) => g.map((r) => r.target))).toEqual([["a", "b"], ["c"], ["z"]]);
  });

  it("yields no DNS SRV groups when every target is '.'", () => {
    expect(groupSrvByPriority([srv(0, 0, ".")])).toEqual([]);
    expect(groupSrvByPriority([])).toEqual([]);
  });

  it("formats a DNS SRV record as a zone-file line", () => {
    expect(formatSrvRecord(srv(10, 5, "a.x"))).toBe("_grpc._tcp.x 30 IN SRV 10 5 5000 a.x.");
    expect(formatSrvRecord(srv(0, 0, "."))).toBe("_grpc._tcp.x 30 IN SRV 0 0 5000 .");
  });
});
