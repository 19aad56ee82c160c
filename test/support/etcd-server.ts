// A throwaway single-node etcd for integration tests: the Debian `etcd`
// binary (3.4) on free loopback ports with a temp data dir. Tests can stop
// it (SIGTERM), kill it (SIGKILL), restart it on the same ports and data,
// and compact its history, all through our own etcd client.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEtcdClient, type EtcdClient } from "../../src/discovery/etcd-client.js";
import { executableProbe, requireService } from "./services.js";

/** ETCD_BINARY is the etcd executable; override with MESH_ETCD_BINARY. */
export const ETCD_BINARY = process.env.MESH_ETCD_BINARY ?? "/usr/bin/etcd";

/** requireEtcd is requireService for the etcd binary (skips loudly, or fails in CI). */
export function requireEtcd(): Promise<boolean> {
  return requireService(
    "etcd",
    executableProbe(ETCD_BINARY),
    "install it with `apt-get install -y etcd-server` or set MESH_ETCD_BINARY",
  );
}

/** EtcdServer is a running (or stopped) test etcd. */
export interface EtcdServer {
  /** endpoint is the client address, `127.0.0.1:<port>`. */
  readonly endpoint: string;
  /** clientUrl is `http://127.0.0.1:<port>`. */
  readonly clientUrl: string;
  readonly dataDir: string;
  /** client talks to this server; it survives stop and restart. */
  readonly client: EtcdClient;
  /** running is true between a start and the process's exit. */
  running(): boolean;
  /** stop sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
  /** kill sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** pause freezes etcd (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** resume thaws a paused etcd (SIGCONT). */
  resume(): void;
  /** restart starts etcd again on the same ports and data dir and waits until it serves. */
  restart(): Promise<void>;
  /** revision is the store's current revision. */
  revision(): Promise<bigint>;
  /** compact drops history up to `revision` (default: the current one), physically. */
  compact(revision?: bigint): Promise<bigint>;
  /** close kills etcd and deletes the data dir. */
  close(): Promise<void>;
}

/** freePort asks the kernel for an unused loopback port. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address === null || typeof address === "string") {
          reject(new Error("no port"));
        } else {
          resolve(address.port);
        }
      });
    });
  });
}

/** startEtcdServer starts etcd and resolves once it answers a Range. */
export async function startEtcdServer(
  options: { readyTimeoutMs?: number } = {},
): Promise<EtcdServer> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const dataDir = await mkdtemp(join(tmpdir(), "mesh-etcd-"));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const endpoint = `127.0.0.1:${clientPort}`;
  const clientUrl = `http://${endpoint}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const client = createEtcdClient({ endpoints: [endpoint], connectTimeoutMs: 1_000 });
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = "";

  function launch(): void {
    log = "";
    const args = [
      "--name",
      "t",
      "--data-dir",
      dataDir,
      "--listen-client-urls",
      clientUrl,
      "--advertise-client-urls",
      clientUrl,
      "--listen-peer-urls",
      peerUrl,
      "--initial-advertise-peer-urls",
      peerUrl,
      "--initial-cluster",
      `t=${peerUrl}`,
      // A single member elects itself after one election timeout: shorten it
      // so starts and restarts take a fraction of a second.
      "--heartbeat-interval",
      "25",
      "--election-timeout",
      "250",
      "--logger",
      "zap",
      "--log-level",
      "warn",
    ];
    const proc = spawn(ETCD_BINARY, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = proc;
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      log = (log + chunk).slice(-4_000);
    });
    exited = new Promise((resolve) => {
      proc.once("exit", () => {
        if (child === proc) {
          child = undefined;
        }
        resolve();
      });
    });
  }

  async function waitReady(): Promise<void> {
    const until = performance.now() + readyTimeoutMs;
    let lastError: unknown;
    while (performance.now() < until) {
      if (child === undefined) {
        throw new Error(`etcd exited during start; log tail:\n${log}`);
      }
      try {
        await client.kv.range({ key: new Uint8Array([0]) }, { timeoutMs: 1_000 });
        return;
      } catch (e) {
        lastError = e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(
      `etcd not ready within ${readyTimeoutMs} ms (${String(lastError)}); log:\n${log}`,
    );
  }

  async function signal(sig: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (proc === undefined) {
      return;
    }
    proc.kill(sig);
    await exited;
  }

  async function revision(): Promise<bigint> {
    const res = await client.kv.range({ key: new Uint8Array([0]), countOnly: true });
    return res.header?.revision ?? 0n;
  }

  launch();
  try {
    await waitReady();
  } catch (e) {
    await signal("SIGKILL");
    client.close();
    await rm(dataDir, { recursive: true, force: true });
    throw e;
  }

  return {
    endpoint,
    clientUrl,
    dataDir,
    client,
    running: () => child !== undefined,
    stop: () => signal("SIGTERM"),
    kill: () => signal("SIGKILL"),
    pause: () => {
      child?.kill("SIGSTOP");
    },
    resume: () => {
      child?.kill("SIGCONT");
    },
    async restart() {
      await signal("SIGTERM");
      launch();
      await waitReady();
    },
    revision,
    async compact(rev) {
      const target = rev ?? (await revision());
      await client.kv.compact({ revision: target, physical: true });
      return target;
    },
    async close() {
      child?.kill("SIGCONT");
      await signal("SIGKILL");
      client.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
