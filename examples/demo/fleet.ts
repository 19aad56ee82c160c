import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type {
  ParentMessage,
  ReplicaConfig,
  ReplicaMessage,
  ReplicaRole,
  ReplicaStats,
} from "./protocol.js";

const REPLICA_SCRIPT = fileURLToPath(new URL("./replica.ts", import.meta.url));
const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Incarnation is one process of a replica. */
export interface Incarnation {
  readonly number: number;
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  address: string | undefined;
  /**
   * state: `killed` by kill(), `stopped` after stop() asked (or SIGKILLed a
   * process still starting), `exited` on its own: a crash.
   */
  state: "starting" | "serving" | "stopping" | "stopped" | "exited" | "killed";
  /** readyAt is when it began serving (performance.now()), once it has. */
  readyAt: number | undefined;
  /** stats are the latest counters the process reported. */
  stats: ReplicaStats | undefined;
  readonly exited: Promise<void>;
  /** stderr keeps the tail of what the process wrote there. */
  stderr: string;
}

/** Replica is one named replica and its processes, newest last. */
export interface Replica {
  readonly name: string;
  readonly role: ReplicaRole;
  readonly incarnations: Incarnation[];
}

/** FleetOptions configures createFleet. */
export interface FleetOptions {
  /** configFor builds a replica process's config. */
  configFor(name: string, role: ReplicaRole, incarnation: number): ReplicaConfig;
  /** onMessage hears every message of every replica. */
  onMessage?(replica: Replica, inc: Incarnation, m: ReplicaMessage): void;
  /** onExit hears a process end (unexpectedly or not). */
  onExit?(replica: Replica, inc: Incarnation, code: number | null, signal: string | null): void;
}

/** Fleet runs the replica processes and makes sure none outlives the demo. */
export interface Fleet {
  readonly replicas: ReadonlyMap<string, Replica>;
  /** start forks a new process for `name` and resolves when it serves (its address). */
  start(name: string, role: ReplicaRole, timeoutMs?: number): Promise<string>;
  /** kill SIGKILLs the current process of `name`. */
  kill(name: string): Incarnation | undefined;
  /** stop asks every live process to close gracefully, then SIGKILLs the ones left after timeoutMs. */
  stop(timeoutMs: number): Promise<void>;
  /** killAllSync SIGKILLs every live process at once (for exit handlers). */
  killAllSync(): void;
  /** addressOwner names the replica (and incarnation) that served at `address`. */
  addressOwner(address: string): string | undefined;
}

/** createFleet manages the demo's replica processes. */
export function createFleet(options: FleetOptions): Fleet {
  const replicas = new Map<string, Replica>();
  const owners = new Map<string, string>();
  const live = new Set<Incarnation>();

  // Generous: on an oversubscribed host a tsx child can take tens of seconds to start.
  const start = (name: string, role: ReplicaRole, timeoutMs = 120_000) => {
    let replica = replicas.get(name);
    if (replica === undefined) {
      replica = { name, role, incarnations: [] };
      replicas.set(name, replica);
    }
    const r = replica;
    const number = r.incarnations.length + 1;
    const config = options.configFor(name, role, number);
    const child = fork(REPLICA_SCRIPT, [JSON.stringify(config)], {
      cwd: REPO_ROOT,
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "ignore", "pipe", "ipc"],
      env: { ...process.env, FORCE_COLOR: "0" },
    });
    let markExited = () => {};
    const inc: Incarnation = {
      number,
      child,
      pid: child.pid,
      address: undefined,
      readyAt: undefined,
      state: "starting",
      stats: undefined,
      exited: new Promise<void>((resolve) => {
        markExited = resolve;
      }),
      stderr: "",
    };
    r.incarnations.push(inc);
    live.add(inc);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      inc.stderr = (inc.stderr + d).slice(-4_000);
    });
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${name} did not start within ${timeoutMs} ms\n${inc.stderr}`));
      }, timeoutMs);
      child.on("message", (m: ReplicaMessage) => {
        if (m.type === "ready") {
          inc.address = m.address;
          inc.readyAt = performance.now();
          inc.state = "serving";
          owners.set(m.address, number === 1 ? name : `${name}#${number}`);
          clearTimeout(timer);
          resolve(m.address);
        } else if (m.type === "stats" || m.type === "stopped") {
          inc.stats = m.stats;
        }
        options.onMessage?.(r, inc, m);
      });
      child.on("exit", (code, signal) => {
        live.delete(inc);
        if (inc.state === "stopping") inc.state = "stopped";
        else if (inc.state !== "killed") inc.state = "exited";
        clearTimeout(timer);
        markExited();
        reject(new Error(`${name} exited (${signal ?? code}) before serving\n${inc.stderr}`));
        options.onExit?.(r, inc, code, signal);
      });
    });
  };

  return {
    replicas,
    start,
    kill(name) {
      const inc = replicas.get(name)?.incarnations.at(-1);
      if (inc === undefined || !live.has(inc)) return undefined;
      inc.state = "killed";
      inc.child.kill("SIGKILL");
      return inc;
    },
    async stop(timeoutMs) {
      const waiting = [...live].map((inc) => {
        const starting = inc.state === "starting";
        inc.state = "stopping";
        if (starting) {
          // It has served nothing and may not listen for messages yet.
          inc.child.kill("SIGKILL");
          return inc.exited;
        }
        try {
          inc.child.send({ type: "stop" } satisfies ParentMessage);
        } catch {
          inc.child.kill("SIGKILL");
        }
        return inc.exited;
      });
      const timer = setTimeout(() => {
        for (const inc of live) inc.child.kill("SIGKILL");
      }, timeoutMs);
      await Promise.all(waiting);
      clearTimeout(timer);
    },
    killAllSync() {
      for (const inc of live) {
        try {
          inc.child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }
    },
    addressOwner: (address) => owners.get(address),
  };
}
