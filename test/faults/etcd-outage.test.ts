// Issue 14.3: an etcd outage must not fail calls. Three server processes
// register in a real etcd; a client calls at a steady rate while etcd is
// paused for 10 s (its leases expire and are revoked on resume) and while it
// is SIGKILLed and restarted on the same data dir and port. Assertions are
// counts (failed calls, the endpoint set's minimum size), never durations.
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BalancerEvent } from "../../src/balancer/balancer.js";
import { createMeshTransport, type MeshTransport } from "../../src/client/create-mesh-transport.js";
import { createEtcdRegistry } from "../../src/discovery/etcd-registry.js";
import type { ServiceRegistry } from "../../src/discovery/registry.js";
import { EchoService } from "../support/echo-service.js";
import { type EtcdServer, requireEtcd, startEtcdServer } from "../support/etcd-server.js";

const hasEtcd = await requireEtcd();
const SERVER_SCRIPT = fileURLToPath(new URL("./etcd-registered-server.ts", import.meta.url));
const PREFIX = `/faults${process.pid}`;
const PAUSE_MS = 10_000;
const utf8 = new TextEncoder();

interface ServerProcess {
  readonly child: ChildProcess;
  readonly lines: string[];
}

async function startServer(endpoint: string, id: string): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", SERVER_SCRIPT, endpoint, PREFIX, id], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`server ${id} exited with ${code}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      lines.push(line);
      if (line.startsWith("ready ")) resolve();
    });
  });
  await ready;
  return { child, lines };
}

/** leaseIds reads the lease behind each registered record. */
async function leaseIds(etcd: EtcdServer): Promise<Map<string, bigint>> {
  const key = utf8.encode(`${PREFIX}/echo/`);
  const rangeEnd = utf8.encode(`${PREFIX}/echo0`);
  const res = await etcd.client.kv.range({ key, rangeEnd });
  return new Map(res.kvs.map((kv) => [new TextDecoder().decode(kv.key), kv.lease]));
}

/**
 * drive calls the service at a steady rate (4 callers, each pausing 20 ms
 * between calls) until `during` settles, and counts outcomes.
 */
async function drive(transport: MeshTransport, during: Promise<void>) {
  const client = createClient(EchoService, transport);
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const servedBy = new Set<string>();
  const caller = async () => {
    while (!stop) {
      try {
        const res = await client.echo({ payload: new Uint8Array([1]) }, { timeoutMs: 5_000 });
        ok++;
        servedBy.add(res.servedBy);
      } catch (e) {
        failures.push(String(e));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const callers = [caller(), caller(), caller(), caller()];
  try {
    await during;
  } finally {
    stop = true;
    await Promise.all(callers);
  }
  return { ok, failures, servedBy };
}

describe.skipIf(!hasEtcd)("etcd outage under 3 registered server processes", () => {
  let etcd: EtcdServer;
  const servers: ServerProcess[] = [];
  let registry: ServiceRegistry;
  let transport: MeshTransport;
  const events: BalancerEvent[] = [];
  const eventTimes: number[] = [];

  const sizes = () =>
    events.flatMap((e) => (e.source === "balancer" && e.type === "endpoints" ? [e.size] : []));
  const count = (type: string) =>
    events.filter((e) => e.source === "balancer" && e.type === type).length;
  const currentSize = () => sizes().at(-1) ?? 0;

  beforeAll(async () => {
    etcd = await startEtcdServer();
    for (const id of ["s1", "s2", "s3"]) servers.push(await startServer(etcd.endpoint, id));
    registry = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix: PREFIX });
    transport = createMeshTransport({
      target: "etcd:///echo",
      registries: [registry],
      logger: false,
      onEvent: (e) => {
        if ("source" in e && e.source === "balancer") {
          events.push(e as BalancerEvent);
          eventTimes.push(performance.now());
        }
      },
    });
    // Warm up until the balancer uses all three (expect.poll is for tests only).
    const client = createClient(EchoService, transport);
    const until = performance.now() + 30_000;
    while (currentSize() < 3) {
      if (performance.now() > until) throw new Error(`endpoint set at ${currentSize()}, not 3`);
      await client.echo({}).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
  }, 60_000);

  afterAll(async () => {
    await transport?.close();
    await registry?.close();
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.child.exitCode !== null) return resolve();
            s.child.once("exit", () => resolve());
            s.child.kill("SIGKILL");
          }),
      ),
    );
    await etcd?.close();
  });

  it("a 10 s SIGSTOP of etcd fails no call and never empties the endpoint set", async () => {
    const before = await leaseIds(etcd);
    expect(before.size).toBe(3);
    const from = events.length;
    const run = drive(
      transport,
      (async () => {
        etcd.pause();
        await new Promise((r) => setTimeout(r, PAUSE_MS));
        etcd.resume();
        // The outage is over once every server re-registered on a new lease.
        await expect
          .poll(
            async () => {
              const after = await leaseIds(etcd);
              return [...before].filter(([k, id]) => {
                const now = after.get(k);
                return now !== undefined && now !== id;
              }).length;
            },
            { timeout: 30_000 },
          )
          .toBe(3);
        // Let the client's watch deliver whatever the resume caused.
        await expect.poll(() => currentSize(), { timeout: 10_000 }).toBe(3);
        await new Promise((r) => setTimeout(r, 500));
      })(),
    );
    const result = await run;
    const window = events.slice(from);
    const windowSizes = window.flatMap((e) =>
      e.source === "balancer" && e.type === "endpoints" ? [e.size] : [],
    );
    // Reported, not asserted: how long each removal was held before the
    // registrar's record came back.
    const heldAt = new Map<string, number>();
    const heldForMs: number[] = [];
    events.forEach((e, i) => {
      if (e.source !== "balancer") return;
      if (e.type === "removal-held") heldAt.set(e.address, eventTimes[i] ?? 0);
      if (e.type === "removal-cancelled") {
        heldForMs.push(Math.round((eventTimes[i] ?? 0) - (heldAt.get(e.address) ?? 0)));
      }
    });
    console.info(
      `etcd pause: held for ${JSON.stringify(heldForMs)} ms; ${result.ok} ok, ${result.failures.length} failed; ` +
        `removal-held ${count("removal-held")}, removal-applied ${count("removal-applied")}, ` +
        `removal-cancelled ${count("removal-cancelled")}; set sizes ${JSON.stringify(windowSizes)}`,
    );
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(0);
    expect(Math.min(3, ...windowSizes)).toBeGreaterThanOrEqual(1);
    expect([...result.servedBy].sort()).toEqual(["s1", "s2", "s3"]);
    // Every server lost its lease and re-registered (checked above through
    // the lease ids); none was removed for good.
    expect(count("removal-applied")).toBe(0);
  }, 90_000);

  it("SIGKILL of etcd and a restart on the same data dir and port fail no call", async () => {
    const from = events.length;
    const result = await drive(
      transport,
      (async () => {
        await etcd.kill();
        await new Promise((r) => setTimeout(r, 1_000));
        await etcd.restart();
        await expect.poll(async () => (await leaseIds(etcd)).size, { timeout: 20_000 }).toBe(3);
        await new Promise((r) => setTimeout(r, 1_000));
      })(),
    );
    const windowSizes = events
      .slice(from)
      .flatMap((e) => (e.source === "balancer" && e.type === "endpoints" ? [e.size] : []));
    console.info(
      `etcd kill+restart: ${result.ok} ok, ${result.failures.length} failed; set sizes ${JSON.stringify(windowSizes)}`,
    );
    expect(result.failures).toEqual([]);
    expect(result.ok).toBeGreaterThan(0);
    expect(Math.min(3, ...windowSizes)).toBeGreaterThanOrEqual(1);
    expect(currentSize()).toBe(3);
  }, 90_000);
});
