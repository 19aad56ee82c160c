import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { EndpointSet } from "../../src/discovery/endpoint.js";
import {
  createMeshRegistry,
  defaultMeshRegistryDir,
  type MeshRegistry,
  type MeshRegistryOptions,
} from "../../src/discovery/mesh-registry.js";
import type { Registration, RegistryEvent } from "../../src/discovery/registry.js";
import type { Resolver, ResolverEvent } from "../../src/discovery/resolver.js";
import { createFakeClock } from "../../src/testing/fake-clock.js";
import { waitFor } from "../support/wait-for.js";

const CHILD = fileURLToPath(new URL("./fixtures/mesh-registry-child.ts", import.meta.url));

// Everything a test opens, closed in afterEach so a failing test cannot leave
// timers, watchers, child processes or temp directories behind.
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "mesh-registry-test-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function newRegistry(options: MeshRegistryOptions = {}): Promise<MeshRegistry> {
  const registry = createMeshRegistry({ dir: await tempDir(), ...options });
  cleanups.push(() => registry.close());
  return registry;
}

interface Watched {
  readonly sets: EndpointSet[];
  readonly events: ResolverEvent[];
  latest(): EndpointSet | undefined;
  addresses(): string[] | undefined;
}

function watchResolver(resolver: Resolver): Watched {
  const sets: EndpointSet[] = [];
  const events: ResolverEvent[] = [];
  cleanups.push(() => resolver.close());
  resolver.start({ onUpdate: (s) => sets.push(s), onEvent: (e) => events.push(e) });
  const latest = () => sets[sets.length - 1];
  return { sets, events, latest, addresses: () => latest()?.endpoints.map((e) => e.address) };
}

function registration(instanceId: string, address: string, metadata = {}): Registration {
  return { service: "orders", instanceId, address, metadata };
}

/** writeRecord puts a record file in place by hand, as another process would. */
async function writeRecord(dir: string, file: string, body: unknown): Promise<string> {
  await mkdir(join(dir, "orders"), { recursive: true });
  const path = join(dir, "orders", file);
  await writeFile(path, typeof body === "string" ? body : JSON.stringify(body));
  return path;
}

describe("mesh registry", () => {
  it("pushes a registration to a running resolver via fs.watch (no poll), and only on change", async () => {
    // A poll period far beyond the test proves the watch did the work.
    const registry = await newRegistry({ pollMs: 60_000, leaseTtlMs: 600 });
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.sets.length === 1);
    expect(w.addresses()).toEqual([]);

    // No poll runs during the test: only the watch can deliver it (latency is
    // measured in the discovery benchmark, not here).
    await registry.register(registration("a", "127.0.0.1:5001", { zone: "z1", weight: "3" }));
    await waitFor(() => w.addresses()?.length === 1, 10_000);
    expect(w.latest()?.endpoints[0]).toEqual({
      address: "127.0.0.1:5001",
      weight: 3,
      metadata: { zone: "z1", weight: "3" },
    });
    expect(Object.isFrozen(w.latest())).toBe(true);

    // Renewals every 200 ms rewrite the file (fs events), but the set is the same.
    await new Promise((r) => setTimeout(r, 700));
    expect(w.sets).toHaveLength(2);
    expect(w.events).toEqual([]);
  });

  it("drops a deregistered instance and deletes its file; deregister is idempotent", async () => {
    const registry = await newRegistry({ pollMs: 60_000 });
    const w = watchResolver(registry.resolver("orders"));
    const r = await registry.register(registration("a", "127.0.0.1:5001"));
    await waitFor(() => w.addresses()?.length === 1);

    await r.deregister();
    await r.deregister();
    await waitFor(() => w.addresses()?.length === 0, 10_000);
    expect(await readdir(join(registry.dir, "orders"))).toEqual([]);
    expect(w.latest()?.staleSince).toBeUndefined();
  });

  it("resolves two registrations, sorted by address, and a resolver started later sees both", async () => {
    const registry = await newRegistry();
    const w = watchResolver(registry.resolver("orders"));
    await registry.register(registration("b", "127.0.0.1:5002"));
    await registry.register(registration("a", "[::1]:5001", { version: "v2" }));
    await waitFor(() => w.addresses()?.length === 2);
    expect(w.addresses()).toEqual(["127.0.0.1:5002", "[::1]:5001"]);

    const late = watchResolver(registry.resolver("orders"));
    await waitFor(() => late.sets.length === 1);
    expect(late.addresses()).toEqual(["127.0.0.1:5002", "[::1]:5001"]);
    // Services are separate directories.
    const other = watchResolver(registry.resolver("billing"));
    await waitFor(() => other.sets.length === 1);
    expect(other.addresses()).toEqual([]);
  });

  it("sees a registration made by another process and drops it within TTL + poll after SIGKILL", async () => {
    const dir = await tempDir();
    const registry = createMeshRegistry({ dir, pollMs: 200 });
    cleanups.push(() => registry.close());
    const w = watchResolver(registry.resolver("orders"));

    const child: ChildProcess = spawn(
      process.execPath,
      ["--import", "tsx", CHILD, dir, "orders", "child-1", "127.0.0.1:6001", "1000"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(() => out.includes("ready"), 10_000);
    await waitFor(() => w.addresses()?.length === 1, 5_000);
    expect(w.latest()?.endpoints[0]?.metadata.pid).toBe(String(child.pid));

    child.kill("SIGKILL");
    await once(child, "exit");
    // Lease 1000 ms, poll 200 ms; generous for a loaded machine (the
    // discovery benchmark measures how fast it goes).
    await waitFor(() => w.addresses()?.length === 0, 10_000);
    // Dropped because the record expired, not because the file went away.
    expect(await readdir(join(dir, "orders"))).toEqual(["child-1.json"]);
    expect(w.events).toEqual([]);
  });

  it("skips bad files with one bad-record event each and keeps the good ones", async () => {
    const dir = await tempDir();
    const live = Date.now() + 60_000;
    await writeRecord(dir, "good.json", { Addr: "127.0.0.1:5001", expiresAt: live });
    await writeRecord(dir, "json.json", '{"Addr":"127.0.0.1:50');
    await writeRecord(dir, "addr.json", { Addr: "no-port", expiresAt: live });
    await writeRecord(dir, "port.json", { Addr: "127.0.0.1:70000", expiresAt: live });
    await writeRecord(dir, "weight.json", {
      Addr: "127.0.0.1:5002",
      Metadata: { weight: "0" },
      expiresAt: live,
    });
    await writeRecord(dir, "lease.json", { Addr: "127.0.0.1:5003" });
    await writeRecord(dir, "notes.txt", "hello");
    await writeRecord(dir, "huge.json", " ".repeat(70_000));
    await mkdir(join(dir, "orders", "dir.json"));
    // A write in progress by another process is not a record.
    await writeRecord(dir, ".good.abc123.tmp", '{"Addr":"127.0');

    const registry = createMeshRegistry({ dir, pollMs: 60_000 });
    cleanups.push(() => registry.close());
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.sets.length === 1);
    expect(w.addresses()).toEqual(["127.0.0.1:5001"]);
    const reasons = Object.fromEntries(
      w.events.map((e) => {
        expect(e.type).toBe("bad-record");
        return e.type === "bad-record" ? [e.record.slice(dir.length + 8), e.reason] : [];
      }),
    );
    expect(reasons).toEqual({
      "addr.json": 'Addr "no-port" is not host:port',
      "dir.json": "not a regular file",
      "huge.json": "file is 70000 bytes, more than 65536",
      "json.json": "not JSON",
      "lease.json": "expiresAt undefined is not a finite number",
      "notes.txt": "file name does not end in .json",
      "port.json": 'Addr "127.0.0.1:70000": port 70000 is not in 1..65535',
      "weight.json": 'weight "0" is not an integer in 1..65535',
    });

    // A rescan does not repeat them; fixing a file clears it.
    const count = w.events.length;
    await writeRecord(dir, "port.json", { Addr: "127.0.0.1:7000", expiresAt: live });
    await waitFor(() => w.addresses()?.length === 2);
    expect(w.events).toHaveLength(count);
    expect(w.addresses()).toEqual(["127.0.0.1:5001", "127.0.0.1:7000"]);
  });

  it("drops a record at its expiresAt without waiting for a poll, and garbage-collects long-dead files", async () => {
    const dir = await tempDir();
    const ttl = 1_000;
    const now = Date.now();
    await writeRecord(dir, "soon.json", { Addr: "127.0.0.1:5001", expiresAt: now + 300 });
    await writeRecord(dir, "recent.json", { Addr: "127.0.0.1:5002", expiresAt: now - ttl });
    await writeRecord(dir, "dead.json", { Addr: "127.0.0.1:5003", expiresAt: now - 3 * ttl });
    const temp = await writeRecord(dir, ".dead.abc.tmp", "{");
    await utimes(temp, new Date(now - 3 * ttl), new Date(now - 3 * ttl));
    await writeRecord(dir, ".live.abc.tmp", "{");

    const registry = createMeshRegistry({ dir, pollMs: 60_000, leaseTtlMs: ttl });
    cleanups.push(() => registry.close());
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.sets.length === 1);
    expect(w.addresses()).toEqual(["127.0.0.1:5001"]);
    expect((await readdir(join(dir, "orders"))).sort()).toEqual([
      ".live.abc.tmp",
      "recent.json",
      "soon.json",
    ]);
    await waitFor(() => w.addresses()?.length === 0, 10_000);
    expect(Date.now()).toBeGreaterThanOrEqual(now + 300);
    expect(w.events).toEqual([]);
  });

  it("keeps one endpoint per address, from the record renewed last", async () => {
    const dir = await tempDir();
    const now = Date.now();
    const addr = "127.0.0.1:5001";
    await writeRecord(dir, "old.json", { Addr: addr, Metadata: { v: "1" }, expiresAt: now + 1e4 });
    await writeRecord(dir, "new.json", { Addr: addr, Metadata: { v: "2" }, expiresAt: now + 5e4 });
    const registry = createMeshRegistry({ dir });
    cleanups.push(() => registry.close());
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.sets.length === 1);
    expect(w.latest()?.endpoints).toEqual([{ address: addr, weight: 1, metadata: { v: "2" } }]);
  });

  it("keeps the last-known set, marked stale, when the directory breaks, and recovers", async () => {
    const dir = await tempDir();
    const record = { Addr: "127.0.0.1:5001", expiresAt: Date.now() + 60_000 };
    await writeRecord(dir, "a.json", record);
    // No polling within the test: the watch and resolveNow drive every scan.
    const registry = createMeshRegistry({ dir, pollMs: 60_000 });
    cleanups.push(() => registry.close());
    const resolver = registry.resolver("orders");
    const w = watchResolver(resolver);
    await waitFor(() => w.sets.length === 1);

    // A vanished directory is an outage, not an empty service.
    await rm(join(dir, "orders"), { recursive: true });
    await waitFor(() => w.latest()?.staleSince !== undefined);
    const stale = w.latest();
    expect(stale?.endpoints.map((e) => e.address)).toEqual(["127.0.0.1:5001"]);
    expect(w.events.map((e) => e.type)).toEqual(["error", "stale"]);
    expect(w.events[1]).toEqual({
      type: "stale",
      target: "mesh:///orders",
      sinceMs: stale?.staleSince,
    });

    // Still failing (a file where the directory was): errors, but no new snapshot.
    await writeFile(join(dir, "orders"), "not a directory");
    resolver.resolveNow?.();
    await waitFor(() => w.events.length === 3);
    expect(w.events[2]?.type).toBe("error");
    expect(w.sets.every((s) => s.endpoints.length === 1)).toBe(true);
    expect(w.latest()).toBe(stale);

    // Restored with the same record: a fresh, non-stale snapshot, and the new
    // directory is watched (the old watch followed the deleted inode).
    await rm(join(dir, "orders"));
    await writeRecord(dir, "a.json", record);
    resolver.resolveNow?.();
    await waitFor(() => w.latest()?.staleSince === undefined);
    expect(w.addresses()).toEqual(["127.0.0.1:5001"]);
    await writeRecord(dir, "b.json", { ...record, Addr: "127.0.0.1:5002" });
    await waitFor(() => w.addresses()?.length === 2, 10_000);
  });

  it("renews the lease on its clock and reports a lapsed lease", async () => {
    const clock = createFakeClock();
    const events: RegistryEvent[] = [];
    const registry = await newRegistry({ clock, leaseTtlMs: 900, onEvent: (e) => events.push(e) });
    await registry.register(registration("a", "127.0.0.1:5001"));
    const path = join(registry.dir, "orders", "a.json");
    const expiresAt = async () =>
      (JSON.parse(await readFile(path, "utf8")) as { expiresAt: number }).expiresAt;
    const first = await expiresAt();
    expect(first).toBeGreaterThan(Date.now());
    expect(events.map((e) => e.type)).toEqual(["registered"]);

    await new Promise((r) => setTimeout(r, 5));
    clock.advance(300);
    let second = first;
    for (const until = Date.now() + 2_000; second === first && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 5));
      second = await expiresAt();
    }
    expect(second).toBeGreaterThan(first);

    // The process stalled past its lease: the next renewal says so and recovers.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + 10_000);
    clock.advance(300);
    await waitFor(() => events.length === 3);
    expect(events.map((e) => e.type)).toEqual(["registered", "lease-lost", "re-registered"]);
  });

  it("leaves no timers or watchers after close, deletes its records, and refuses new work", async () => {
    const clock = createFakeClock();
    const events: RegistryEvent[] = [];
    const registry = await newRegistry({ clock, onEvent: (e) => events.push(e) });
    await registry.register(registration("a", "127.0.0.1:5001"));
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.sets.length === 1);
    expect(clock.pendingTimers).toBe(2);

    await registry.close();
    await registry.close();
    expect(clock.pendingTimers).toBe(0);
    expect(await readdir(join(registry.dir, "orders"))).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(["registered", "deregistered"]);
    // A live watcher would schedule a debounced scan on this write.
    await writeRecord(registry.dir, "b.json", { Addr: "127.0.0.1:5002", expiresAt: Date.now() });
    await new Promise((r) => setTimeout(r, 100));
    expect(clock.pendingTimers).toBe(0);
    expect(w.sets).toHaveLength(1);

    await expect(registry.register(registration("c", "127.0.0.1:5003"))).rejects.toThrow(
      "mesh registry is closed",
    );
    expect(() => registry.resolver("orders")).toThrow("mesh registry is closed");
  });

  const BAD_NAMES = ["", ".", "..", "../etc", "a/b", "a\\b", "a b", ".hidden", "ördr", "a\0b"];
  it.each([...BAD_NAMES, "x".repeat(129)])(
    "rejects the name %j with a TypeError quoting it",
    async (name) => {
      const registry = await newRegistry();
      const quoted = JSON.stringify(name);
      expect(() => registry.resolver(name)).toThrow(TypeError);
      expect(() => registry.resolver(name)).toThrow(`service ${quoted}`);
      await expect(
        registry.register({ ...registration("a", "127.0.0.1:5001"), service: name }),
      ).rejects.toThrow(`service ${quoted}`);
      await expect(registry.register(registration(name, "127.0.0.1:5001"))).rejects.toThrow(
        new TypeError(
          `instanceId ${quoted} must be 1..128 characters of [A-Za-z0-9._-] not starting with "."`,
        ),
      );
    },
  );

  it.each(["orders", "a.b-c_D9", "x".repeat(128), "v1..2"])("accepts the name %j", async (name) => {
    const registry = await newRegistry();
    const w = watchResolver(registry.resolver(name));
    await registry.register({ ...registration(name, "127.0.0.1:5001"), service: name });
    await waitFor(() => w.addresses()?.length === 1);
    expect(await readdir(registry.dir)).toEqual([name]);
  });

  it.each([
    [{ leaseTtlMs: 499 }, new RangeError("leaseTtlMs 499 must be in 500..2147483647")],
    [{ leaseTtlMs: Number.NaN }, new RangeError("leaseTtlMs NaN must be in 500..2147483647")],
    [{ pollMs: 0 }, new RangeError("pollMs 0 must be in 10..2147483647")],
    [
      { pollMs: Number.POSITIVE_INFINITY },
      new RangeError("pollMs Infinity must be in 10..2147483647"),
    ],
    [{ dir: "" }, new TypeError('dir "" must be a non-empty path')],
  ])("rejects options %o", (options, error) => {
    expect(() => createMeshRegistry(options)).toThrow(error);
  });

  it("defaults its directory to MESH_REGISTRY_DIR, else the temp directory", () => {
    expect(defaultMeshRegistryDir({ MESH_REGISTRY_DIR: "/srv/mesh" })).toBe("/srv/mesh");
    expect(defaultMeshRegistryDir({ MESH_REGISTRY_DIR: "" })).toBe(
      join(tmpdir(), "connect-mesh-registry"),
    );
    expect(createMeshRegistry({ dir: "relative" }).dir).toBe(join(process.cwd(), "relative"));
  });

  it("rejects registrations resolvers would skip, and duplicates", async () => {
    const registry = await newRegistry();
    await expect(registry.register(registration("a", "127.0.0.1:0"))).rejects.toThrow(
      new TypeError('registration orders/a: Addr "127.0.0.1:0": port 0 is not in 1..65535'),
    );
    await expect(
      registry.register(registration("a", "127.0.0.1:5001", { weight: "0" })),
    ).rejects.toThrow(
      new TypeError('registration orders/a: weight "0" is not an integer in 1..65535'),
    );
    const first = await registry.register(registration("a", "127.0.0.1:5001"));
    await expect(registry.register(registration("a", "127.0.0.1:5002"))).rejects.toThrow(
      'instance "orders/a" is already registered',
    );
    // After deregistering, the id is free again, and the old handle cannot remove the new one.
    await first.deregister();
    await registry.register(registration("a", "127.0.0.1:5002"));
    await first.deregister();
    expect(await readdir(join(registry.dir, "orders"))).toEqual(["a.json"]);
  });

  it("refuses a registry directory that others can write to", async () => {
    const dir = await tempDir();
    const { chmod } = await import("node:fs/promises");
    await chmod(dir, 0o777);
    const registry = createMeshRegistry({ dir });
    cleanups.push(() => registry.close());
    await expect(registry.register(registration("a", "127.0.0.1:5001"))).rejects.toThrow(
      `mesh registry dir ${JSON.stringify(dir)} is writable by others (mode 777)`,
    );
    const w = watchResolver(registry.resolver("orders"));
    await waitFor(() => w.events.length === 1);
    expect(w.sets).toEqual([]);
  });
});
