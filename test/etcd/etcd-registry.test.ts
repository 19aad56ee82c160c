import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EndpointSet } from "../../src/discovery/endpoint.js";
import {
  createEtcdClient,
  type EtcdClient,
  parseEtcdEndpoints,
  prefixRangeEnd,
} from "../../src/discovery/etcd-client.js";
import { createEtcdRegistry, EtcdWatchError } from "../../src/discovery/etcd-registry.js";
import type { Registration, RegistryEvent } from "../../src/discovery/registry.js";
import type { Resolver, ResolverEvent } from "../../src/discovery/resolver.js";
import { type EtcdServer, requireEtcd, startEtcdServer } from "../support/etcd-server.js";
import { waitFor } from "../support/wait-for.js";

const utf8 = new TextEncoder();
const hasEtcd = await requireEtcd();

// Watchdog interval for these tests: a silent watch is noticed in ~600 ms.
const PROGRESS_MS = 200;

let prefixCounter = 0;
function freshPrefix(): string {
  return `/t${process.pid}/${++prefixCounter}`;
}

function registration(instanceId: string, port: number, extra: Partial<Registration> = {}) {
  return {
    service: "orders",
    instanceId,
    address: `127.0.0.1:${port}`,
    metadata: { zone: "z1" },
    ...extra,
  } satisfies Registration;
}

/** watchResolver starts a resolver and records every snapshot and event. */
function watchResolver(resolver: Resolver) {
  const sets: EndpointSet[] = [];
  const events: ResolverEvent[] = [];
  resolver.start({ onUpdate: (s) => sets.push(s), onEvent: (e) => events.push(e) });
  const latest = () => sets.at(-1);
  return {
    sets,
    events,
    latest,
    addresses: () => (latest()?.endpoints ?? []).map((e) => e.address),
    watchErrors: (reason: EtcdWatchError["reason"]) =>
      events.filter(
        (e) => e.type === "error" && e.error instanceof EtcdWatchError && e.error.reason === reason,
      ),
  };
}

describe.skipIf(!hasEtcd)("etcd registry against a real etcd", () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcdServer();
  });
  afterAll(async () => {
    await etcd?.close();
  });

  it("stores grpc-go records and a resolver sees register, add and delete", async () => {
    const prefix = freshPrefix();
    const registry = createEtcdRegistry({ endpoints: [etcd.clientUrl], prefix });
    const r = watchResolver(registry.resolver("orders"));
    await waitFor(() => r.sets.length === 1);
    expect(r.addresses()).toEqual([]);

    const t0 = performance.now();
    const a = await registry.register(
      registration("a", 5001, { metadata: { zone: "z1", weight: "3" } }),
    );
    await waitFor(() => r.addresses().includes("127.0.0.1:5001"));
    const visibleMs = performance.now() - t0;
    console.info(`etcd: register → visible in ${visibleMs.toFixed(1)} ms`);
    expect(r.latest()?.endpoints[0]).toMatchObject({
      address: "127.0.0.1:5001",
      weight: 3,
      metadata: { zone: "z1", weight: "3" },
    });
    expect(r.latest()?.staleSince).toBeUndefined();

    // The stored record is grpc-go's format, attached to a lease.
    const stored = await etcd.client.kv.range({ key: utf8.encode(`${prefix}/orders/a`) });
    expect(JSON.parse(new TextDecoder().decode(stored.kvs[0]?.value))).toEqual({
      Addr: "127.0.0.1:5001",
      Metadata: { zone: "z1", weight: "3" },
    });
    expect(stored.kvs[0]?.lease).not.toBe(0n);

    const b = await registry.register(registration("b", 5002));
    await waitFor(() => r.addresses().length === 2);
    expect(r.addresses()).toEqual(["127.0.0.1:5001", "127.0.0.1:5002"]);

    await a.deregister();
    await a.deregister(); // idempotent
    await waitFor(() => r.addresses().length === 1);
    expect(r.addresses()).toEqual(["127.0.0.1:5002"]);
    expect((await etcd.client.kv.range({ key: utf8.encode(`${prefix}/orders/a`) })).kvs).toEqual(
      [],
    );

    // A resolver started later lists what is already there.
    const late = watchResolver(registry.resolver("orders"));
    await waitFor(() => late.sets.length === 1);
    expect(late.addresses()).toEqual(["127.0.0.1:5002"]);
    // Every snapshot is frozen and swapped whole.
    expect(Object.isFrozen(late.latest())).toBe(true);
    expect(Object.isFrozen(late.latest()?.endpoints)).toBe(true);

    await b.deregister();
    await waitFor(() => r.addresses().length === 0);
    await registry.close();
  });

  it("fails over to the next endpoint when the first is down", async () => {
    const dead = "127.0.0.1:1"; // nothing listens on port 1
    const registry = createEtcdRegistry({
      endpoints: [dead, etcd.endpoint],
      prefix: freshPrefix(),
    });
    const r = watchResolver(registry.resolver("orders"));
    await registry.register(registration("a", 5001));
    await waitFor(() => r.addresses().length === 1);
    await registry.close();
  });

  it("drops a SIGKILLed server process once its lease expires", async () => {
    const prefix = freshPrefix();
    const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    const r = watchResolver(registry.resolver("orders"));
    const child = spawnRegisteringChild(etcd.endpoint, prefix, 2_000);
    try {
      await waitFor(() => r.addresses().includes("127.0.0.1:6001"), 10_000);
      child.kill("SIGKILL");
      await once(child, "exit");
      const killedAt = performance.now();
      await waitFor(() => r.addresses().length === 0, 2_000 + 1_500);
      console.info(
        `etcd: SIGKILL → gone in ${(performance.now() - killedAt).toFixed(0)} ms (lease TTL 2000 ms)`,
      );
    } finally {
      child.kill("SIGKILL");
      await registry.close();
    }
  });

  it("re-registers when the lease is revoked behind its back", async () => {
    const prefix = freshPrefix();
    const events: RegistryEvent[] = [];
    const registry = createEtcdRegistry({
      endpoints: [etcd.endpoint],
      prefix,
      leaseTtlMs: 3_000,
      onEvent: (e) => events.push(e),
    });
    const r = watchResolver(registry.resolver("orders"));
    await registry.register(registration("a", 5001));
    await waitFor(() => r.addresses().length === 1);
    const key = utf8.encode(`${prefix}/orders/a`);
    const lease = (await etcd.client.kv.range({ key })).kvs[0]?.lease ?? 0n;
    expect(lease).not.toBe(0n);

    const setsBefore = r.sets.length;
    await etcd.client.lease.leaseRevoke({ ID: lease });
    // Revoking deletes the key; a keepalive (every TTL / 3) then reports TTL 0.
    await waitFor(() => events.some((e) => e.type === "re-registered"), 10_000);
    expect(events.map((e) => e.type)).toEqual(["registered", "lease-lost", "re-registered"]);
    await waitFor(() => r.addresses().length === 1 && r.sets.length > setsBefore + 1);
    const relet = (await etcd.client.kv.range({ key })).kvs[0]?.lease ?? 0n;
    expect(relet).not.toBe(0n);
    expect(relet).not.toBe(lease);
    await registry.close();
    expect(events.at(-1)?.type).toBe("deregistered");
  });

  it("keeps stale endpoints while etcd is down, then re-lists when it returns", async () => {
    const prefix = freshPrefix();
    const events: RegistryEvent[] = [];
    const registry = createEtcdRegistry({
      endpoints: [etcd.endpoint],
      prefix,
      leaseTtlMs: 10_000,
      progressIntervalMs: PROGRESS_MS,
      retryBackoff: { initialMs: 50, maxMs: 200 },
      onEvent: (e) => events.push(e),
    });
    const r = watchResolver(registry.resolver("orders"));
    await registry.register(registration("a", 5001));
    await waitFor(() => r.addresses().length === 1);

    await etcd.stop();
    await waitFor(() => r.latest()?.staleSince !== undefined, 5_000);
    expect(r.addresses()).toEqual(["127.0.0.1:5001"]);
    expect(r.events.some((e) => e.type === "stale")).toBe(true);
    // No snapshot ever lost the endpoint because of the outage.
    expect(r.sets.slice(1).every((s) => s.endpoints.length === 1)).toBe(true);
    // A resolver started during the outage has nothing to offer: it pushes
    // no snapshot at all (never an empty one) and reports errors.
    const cold = watchResolver(registry.resolver("orders"));
    await waitFor(() => cold.events.some((e) => e.type === "error"));
    expect(cold.sets).toEqual([]);

    await etcd.restart();
    await waitFor(() => r.latest()?.staleSince === undefined, 5_000);
    expect(r.addresses()).toEqual(["127.0.0.1:5001"]);
    // The watch is live again: a record put now shows up.
    await etcd.client.kv.put({
      key: utf8.encode(`${prefix}/orders/z`),
      value: utf8.encode('{"Addr":"127.0.0.1:5009"}'),
    });
    await waitFor(() => r.addresses().length === 2, 5_000);
    await waitFor(() => cold.addresses().length === 2, 5_000);
    expect(cold.sets.every((s) => s.endpoints.length > 0)).toBe(true);
    // The lease outlived the short outage: the keepalive stream was reopened
    // on it, and nothing was re-registered.
    expect(events.filter((e) => e.type === "lease-lost")).toEqual([]);
    await registry.close();
  });

  it("declares the lease lost after an outage longer than its TTL and re-registers", async () => {
    const prefix = freshPrefix();
    const events: RegistryEvent[] = [];
    const registry = createEtcdRegistry({
      endpoints: [etcd.endpoint],
      prefix,
      leaseTtlMs: 2_000,
      retryBackoff: { initialMs: 50, maxMs: 200 },
      onEvent: (e) => events.push(e),
    });
    await registry.register(registration("a", 5001));
    const key = utf8.encode(`${prefix}/orders/a`);
    const lease = (await etcd.client.kv.range({ key })).kvs[0]?.lease ?? 0n;

    await etcd.kill();
    await waitFor(() => events.some((e) => e.type === "lease-lost"), 2_000 + 1_000);
    await etcd.restart();
    await waitFor(() => events.some((e) => e.type === "re-registered"), 5_000);
    const relet = (await etcd.client.kv.range({ key })).kvs[0]?.lease ?? 0n;
    expect(relet).not.toBe(0n);
    expect(relet).not.toBe(lease);
    await registry.close();
  });

  it("re-lists after its watch revision is compacted, and keeps converging", async () => {
    const prefix = freshPrefix();
    const key = (id: string) => utf8.encode(`${prefix}/orders/${id}`);
    const record = (port: number) => utf8.encode(`{"Addr":"127.0.0.1:${port}"}`);
    await etcd.client.kv.put({ key: key("a"), value: record(5001) });
    // Before the first watch is created, change the store and compact past
    // the listed revision: the watch must come back with compact_revision.
    let compactBeforeWatch = true;
    const client = wrapWatch(etcd.client, async () => {
      if (compactBeforeWatch) {
        compactBeforeWatch = false;
        await etcd.client.kv.put({ key: key("b"), value: record(5002) });
        await etcd.client.kv.deleteRange({ key: key("a") });
        await etcd.compact();
      }
    });
    const registry = createEtcdRegistry({ client, prefix, progressIntervalMs: PROGRESS_MS });
    const r = watchResolver(registry.resolver("orders"));
    await waitFor(() => r.watchErrors("compacted").length === 1);
    await waitFor(() => r.addresses().join() === "127.0.0.1:5002");
    await etcd.client.kv.put({ key: key("c"), value: record(5003) });
    await waitFor(() => r.addresses().join() === "127.0.0.1:5002,127.0.0.1:5003");
    await registry.close();
  });

  it("re-lists when its watch goes silent (watchdog over progress requests)", async () => {
    const prefix = freshPrefix();
    // The first watch delivers its `created` response and then nothing.
    let muted = true;
    const client = wrapWatch(
      etcd.client,
      async () => {},
      () => muted,
    );
    const registry = createEtcdRegistry({ client, prefix, progressIntervalMs: PROGRESS_MS });
    const r = watchResolver(registry.resolver("orders"));
    await waitFor(() => r.sets.length === 1);
    await etcd.client.kv.put({
      key: utf8.encode(`${prefix}/orders/a`),
      value: utf8.encode('{"Addr":"127.0.0.1:5001"}'),
    });
    const silentFrom = performance.now();
    await waitFor(() => r.watchErrors("silent").length === 1, 10_000);
    muted = false;
    expect(performance.now() - silentFrom).toBeGreaterThanOrEqual(2 * PROGRESS_MS);
    await waitFor(() => r.addresses().join() === "127.0.0.1:5001");
    await registry.close();
  });

  it("skips bad records with bad-record events and never crashes", async () => {
    const prefix = freshPrefix();
    const base = `${prefix}/orders/`;
    const table: [key: string, value: string, reason: RegExp][] = [
      [`${base}json`, "{not json", /not JSON/],
      [`${base}array`, "[1]", /no Addr/],
      [`${base}no-addr`, '{"Metadata":{}}', /no Addr/],
      [`${base}bad-addr`, '{"Addr":"localhost"}', /not host:port/],
      [`${base}port-0`, '{"Addr":"127.0.0.1:0"}', /port 0 /],
      [`${base}port-big`, '{"Addr":"127.0.0.1:65536"}', /port 65536/],
      [`${base}weight-0`, '{"Addr":"127.0.0.1:1","Metadata":{"weight":"0"}}', /weight "0"/],
      [`${base}weight-big`, '{"Addr":"127.0.0.1:1","Metadata":{"weight":"65536"}}', /weight/],
      [`${base}weight-x`, '{"Addr":"127.0.0.1:1","Metadata":{"weight":"1.5"}}', /weight/],
      [`${base}meta`, '{"Addr":"127.0.0.1:1","Metadata":"x"}', /Metadata/],
      [`${base}nested/extra`, '{"Addr":"127.0.0.1:1"}', /one path segment/],
      [base, '{"Addr":"127.0.0.1:1"}', /one path segment/],
    ];
    for (const [k, v] of table) {
      await etcd.client.kv.put({ key: utf8.encode(k), value: utf8.encode(v) });
    }
    // Neighbours outside `<prefix>/orders/` are not this service's records.
    await etcd.client.kv.put({
      key: utf8.encode(`${prefix}/orders-v2/x`),
      value: utf8.encode('{"Addr":"127.0.0.1:7000"}'),
    });
    await etcd.client.kv.put({
      key: utf8.encode(`${base}good`),
      value: utf8.encode('{"Addr":"[::1]:7001","Metadata":{"weight":"65535","n":5}}'),
    });

    const registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    const r = watchResolver(registry.resolver("orders"));
    await waitFor(() => r.sets.length === 1);
    expect(r.latest()?.endpoints).toEqual([
      { address: "[::1]:7001", weight: 65535, metadata: { weight: "65535", n: "5" } },
    ]);
    const bad = r.events.filter((e) => e.type === "bad-record");
    for (const [k, , reason] of table) {
      const hit = bad.find((e) => e.record === k);
      expect(hit, k).toBeDefined();
      expect(hit?.reason, k).toMatch(reason);
    }
    expect(bad).toHaveLength(table.length);

    // Through the watch: a new bad record is skipped; a good record turning
    // bad leaves the set (as a re-list would decide).
    await etcd.client.kv.put({ key: utf8.encode(`${base}late`), value: utf8.encode("nope") });
    await waitFor(() => r.events.filter((e) => e.type === "bad-record").length === bad.length + 1);
    await etcd.client.kv.put({ key: utf8.encode(`${base}good`), value: utf8.encode("{}") });
    await waitFor(() => r.addresses().length === 0);
    await registry.close();
  });
});

describe("etcd registry options", () => {
  it.each([
    [{ leaseTtlMs: 1_999 }, /leaseTtlMs 1999 must be a finite number >= 2000/],
    [{ leaseTtlMs: Number.NaN }, /leaseTtlMs NaN/],
    [{ leaseTtlMs: Number.POSITIVE_INFINITY }, /leaseTtlMs Infinity/],
    [{ prefix: "" }, /prefix ""/],
    [{ prefix: "/svc/" }, /prefix "\/svc\/"/],
    [{ progressIntervalMs: 0 }, /progressIntervalMs 0/],
  ])("rejects %o with a RangeError", (options, message) => {
    expect(() => createEtcdRegistry({ endpoints: ["127.0.0.1:2379"], ...options })).toThrow(
      RangeError,
    );
    expect(() => createEtcdRegistry({ endpoints: ["127.0.0.1:2379"], ...options })).toThrow(
      message,
    );
  });

  it("accepts the minimum lease TTL and the defaults", async () => {
    await createEtcdRegistry({ endpoints: ["127.0.0.1:2379"], leaseTtlMs: 2_000 }).close();
    const registry = createEtcdRegistry({ endpoints: ["127.0.0.1:2379"] });
    expect(registry.name).toBe("etcd");
    await registry.close();
  });

  it.each([
    ["https://127.0.0.1:2379", /scheme "https" is not supported/],
    ["unix:///tmp/etcd.sock", /scheme "unix"/],
    ["127.0.0.1", /"127.0.0.1" is not host:port/],
    ["127.0.0.1:0", /is not host:port/],
    [" , ", /name no endpoint/],
  ])("rejects endpoint %s", (value, message) => {
    expect(() => parseEtcdEndpoints(value)).toThrow(TypeError);
    expect(() => parseEtcdEndpoints(value)).toThrow(message);
  });

  it("reads endpoints from the option, then MESH_ETCD_ENDPOINTS, then localhost", () => {
    expect(parseEtcdEndpoints("http://127.0.0.1:2379/, [::1]:22379 ,etcd-0:2379")).toEqual([
      "127.0.0.1:2379",
      "[::1]:22379",
      "etcd-0:2379",
    ]);
    const saved = process.env.MESH_ETCD_ENDPOINTS;
    try {
      delete process.env.MESH_ETCD_ENDPOINTS;
      expect(createEtcdClient().endpoints).toEqual(["127.0.0.1:2379"]);
      process.env.MESH_ETCD_ENDPOINTS = "http://10.0.0.1:2379,10.0.0.2:2379";
      expect(createEtcdClient().endpoints).toEqual(["10.0.0.1:2379", "10.0.0.2:2379"]);
      expect(createEtcdClient({ endpoints: ["10.0.0.3:2379"] }).endpoints).toEqual([
        "10.0.0.3:2379",
      ]);
    } finally {
      if (saved === undefined) {
        delete process.env.MESH_ETCD_ENDPOINTS;
      } else {
        process.env.MESH_ETCD_ENDPOINTS = saved;
      }
    }
  });

  it("computes prefix range ends like etcd", () => {
    const end = (bytes: number[]) => [...prefixRangeEnd(new Uint8Array(bytes))];
    expect(end([0x61, 0x62])).toEqual([0x61, 0x63]);
    expect(end([0x61, 0xff])).toEqual([0x62]);
    expect(end([0xff, 0xff])).toEqual([0]);
  });

  it.each([
    [{ instanceId: "a/b" }, /instanceId "a\/b"/],
    [{ instanceId: "" }, /instanceId ""/],
    [{ service: "a/b" }, /service "a\/b"/],
    [{ address: "localhost" }, /address "localhost"/],
    [{ address: "127.0.0.1:70000" }, /70000/],
    [{ metadata: { weight: "0" } }, /weight "0"/],
  ])("rejects registration %o before contacting etcd", async (bad, message) => {
    const registry = createEtcdRegistry({ endpoints: ["127.0.0.1:1"] });
    await expect(registry.register({ ...registration("a", 5001), ...bad })).rejects.toThrow(
      message,
    );
    await registry.close();
  });

  it("rejects a resolver for a service name with a slash", async () => {
    const registry = createEtcdRegistry({ endpoints: ["127.0.0.1:1"] });
    expect(() => registry.resolver("a/b")).toThrow(TypeError);
    await registry.close();
  });
});

/**
 * wrapWatch returns a client whose Watch calls first run `before` (on the
 * first pull), and which drops every response after `created` while `mute()`.
 */
function wrapWatch(
  client: EtcdClient,
  before: () => Promise<void>,
  mute: () => boolean = () => false,
): EtcdClient {
  const watch: EtcdClient["watch"] = {
    watch(requests, options) {
      return (async function* () {
        await before();
        for await (const res of client.watch.watch(requests, options)) {
          if (!res.created && mute()) {
            continue;
          }
          yield res;
        }
      })();
    },
  };
  return { ...client, watch, close() {} };
}

/**
 * spawnRegisteringChild runs a separate Node process that registers
 * `orders/child` at 127.0.0.1:6001 with the given lease TTL and then idles.
 */
function spawnRegisteringChild(endpoint: string, prefix: string, leaseTtlMs: number): ChildProcess {
  const modulePath = fileURLToPath(
    new URL("../../src/discovery/etcd-registry.ts", import.meta.url),
  );
  const code = `
    const { createEtcdRegistry } = await import(${JSON.stringify(modulePath)});
    const registry = createEtcdRegistry({
      endpoints: [${JSON.stringify(endpoint)}],
      prefix: ${JSON.stringify(prefix)},
      leaseTtlMs: ${leaseTtlMs},
    });
    await registry.register({
      service: "orders", instanceId: "child", address: "127.0.0.1:6001", metadata: {},
    });
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  return child;
}
