// Throwaway services for the faults suite: a private redis-server and a
// single-node etcd on free loopback ports, each a child process whose pid the
// suite signals (SIGSTOP/SIGCONT, SIGKILL) and restarts on the same port. The
// machine's own Redis (127.0.0.1:6379) is shared with other users and is
// never touched.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "./lab.js";

/** REDIS_BINARY is the redis-server executable; override with MESH_REDIS_SERVER_BINARY. */
export const REDIS_BINARY = process.env.MESH_REDIS_SERVER_BINARY ?? "redis-server";

// Services still running when the runner exits (a watchdog's process.exit,
// an uncaught error) are killed with it, so no redis-server or etcd outlives
// the suite; a SIGSTOPped one included (SIGKILL ends stopped processes too).
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const p of running) {
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** freePort asks the kernel for an unused loopback port. */
export async function freePort(): Promise<number> {
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

/** FaultableService is a service process the suite can pause, kill and restart. */
export interface FaultableService {
  readonly host: string;
  readonly port: number;
  /** pid of the running process, undefined while it is down. */
  pid(): number | undefined;
  /** pause sends SIGSTOP: the process holds its sockets but answers nothing. */
  pause(): void;
  /** resume sends SIGCONT. */
  resume(): void;
  /** kill sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
  /** restart starts the process again on the same port and waits until it serves. */
  restart(): Promise<void>;
  /** close kills the process and removes its files. */
  close(): Promise<void>;
}

interface Launcher {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** ready resolves once the service answers; it is polled until readyTimeoutMs. */
  ready(): Promise<boolean>;
}

function startProcess(
  l: Launcher,
  host: string,
  port: number,
  readyTimeoutMs: number,
  cleanup: () => Promise<void>,
) {
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = "";

  function launch(): void {
    log = "";
    const proc = spawn(l.command, [...l.args], { stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    running.add(proc);
    const keep = (chunk: Buffer) => {
      log = (log + chunk.toString("utf8")).slice(-4_000);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    proc.once("error", (e) => {
      log += `\nspawn error: ${e.message}`;
    });
    exited = new Promise((resolve) => {
      proc.once("close", () => {
        running.delete(proc);
        if (child === proc) {
          child = undefined;
        }
        resolve();
      });
    });
  }

  async function waitReady(): Promise<void> {
    const until = performance.now() + readyTimeoutMs;
    while (performance.now() < until) {
      if (child === undefined) {
        throw new Error(`${l.name} exited during start; output tail:\n${log}`);
      }
      if (await l.ready().catch(() => false)) {
        return;
      }
      await sleep(50);
    }
    throw new Error(`${l.name} not ready within ${readyTimeoutMs} ms; output tail:\n${log}`);
  }

  async function kill(): Promise<void> {
    const proc = child;
    if (proc === undefined) {
      return;
    }
    proc.kill("SIGKILL");
    await exited;
  }

  const service: FaultableService = {
    host,
    port,
    pid: () => child?.pid,
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    kill,
    async restart() {
      await kill();
      launch();
      await waitReady();
    },
    async close() {
      // A stopped process ignores nothing but SIGKILL; SIGCONT first keeps
      // the kernel from holding a stopped zombie's sockets any longer.
      child?.kill("SIGCONT");
      await kill();
      await cleanup();
    },
  };
  return {
    service,
    async start(): Promise<FaultableService> {
      launch();
      try {
        await waitReady();
      } catch (e) {
        await kill();
        await cleanup();
        throw e;
      }
      return service;
    },
  };
}

/** tcpAnswers says whether `host:port` accepts a TCP connection and answers `probe` with `expect`. */
function tcpAnswers(host: string, port: number, probe: string, expect: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let got = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 1_000);
    socket.once("connect", () => socket.write(probe));
    socket.on("data", (b) => {
      got += b.toString("latin1");
      if (got.includes(expect)) {
        done(true);
      }
    });
    socket.once("error", () => done(false));
  });
}

/**
 * startRedisServer starts a private, memory-only redis-server (`--save ""
 * --appendonly no`): a restart after SIGKILL comes back empty, as a Redis
 * without persistence does.
 */
export async function startRedisServer(
  opts: { readyTimeoutMs?: number } = {},
): Promise<FaultableService> {
  const host = "127.0.0.1";
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "mesh-bench-redis-"));
  const p = startProcess(
    {
      name: `redis-server :${port}`,
      command: REDIS_BINARY,
      args: [
        "--port",
        String(port),
        "--bind",
        host,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
      ],
      ready: () => tcpAnswers(host, port, "PING\r\n", "+PONG"),
    },
    host,
    port,
    opts.readyTimeoutMs ?? 10_000,
    () => rm(dir, { recursive: true, force: true }),
  );
  return p.start();
}

/** startEtcd starts a single-node etcd (3.4) with a temp data dir; `endpoint` is its client address. */
export async function startEtcd(
  binary: string,
  opts: { readyTimeoutMs?: number } = {},
): Promise<FaultableService & { readonly endpoint: string }> {
  const host = "127.0.0.1";
  const port = await freePort();
  const peerPort = await freePort();
  const dataDir = await mkdtemp(join(tmpdir(), "mesh-bench-etcd-"));
  const clientUrl = `http://${host}:${port}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const p = startProcess(
    {
      name: `etcd :${port}`,
      command: binary,
      args: [
        "--name",
        "b",
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
        `b=${peerUrl}`,
        // A single member elects itself after one election timeout: shorten
        // it so the start takes a fraction of a second (as test/support does).
        "--heartbeat-interval",
        "25",
        "--election-timeout",
        "250",
        "--logger",
        "zap",
        "--log-level",
        "warn",
      ],
      // /health answers {"health":"true"} once the member has a leader.
      ready: () =>
        tcpAnswers(
          host,
          port,
          `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
          '"health":"true"',
        ),
    },
    host,
    port,
    opts.readyTimeoutMs ?? 15_000,
    () => rm(dataDir, { recursive: true, force: true }),
  );
  const s = await p.start();
  return Object.assign(s, { endpoint: `${host}:${port}` });
}
