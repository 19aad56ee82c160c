// Parent side of the IPC protocol: fork a TypeScript child through tsx, send
// it commands with timeouts, and always get rid of it.

import { type ChildProcess, fork } from "node:child_process";
import type { Reply, Request } from "./protocol.js";

export class ChildExitedError extends Error {}

/** ChildHandle is a forked bench child (bench/server.ts or bench/client.ts). */
export class ChildHandle {
  readonly name: string;
  private readonly proc: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private exitInfo: string | undefined;
  /** exited resolves when the process is gone. */
  readonly exited: Promise<void>;

  /**
   * execArgv adds Node flags (e.g. `--cpu-prof`) to the child's own; preload
   * flags (`--import` a library, stacks/preload.ts) go before tsx's.
   */
  constructor(
    name: string,
    file: string,
    args: readonly string[] = [],
    execArgv: readonly string[] = [],
    preload: readonly string[] = [],
  ) {
    this.name = name;
    this.proc = fork(file, [...args], {
      // A compiled child (lib/child-build.ts) runs on plain node; a .ts one
      // through tsx's loader (Node >= 20.6).
      execArgv: file.endsWith(".mjs")
        ? ["--no-warnings", ...execArgv]
        : [...preload, "--import", "tsx", "--no-warnings", ...execArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "json",
    });
    this.exited = new Promise((resolve) => {
      this.proc.once("exit", (code, signal) => {
        this.exitInfo = signal === null ? `exit code ${code}` : `signal ${signal}`;
        this.failAll(new ChildExitedError(`${this.name} exited (${this.exitInfo})`));
        resolve();
      });
    });
    this.proc.on("error", (err) => this.failAll(err));
    this.proc.on("message", (raw) => {
      const reply = raw as Reply;
      const p = this.pending.get(reply.id);
      if (p === undefined) {
        return;
      }
      this.pending.delete(reply.id);
      clearTimeout(p.timer);
      if (reply.ok) {
        p.resolve(reply.result);
      } else {
        p.reject(new Error(`${this.name}: ${reply.error}`));
      }
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** call sends a command and waits for its reply, failing after `timeoutMs`. */
  call<T>(cmd: string, args?: unknown, timeoutMs = 10_000): Promise<T> {
    if (this.exitInfo !== undefined) {
      return Promise.reject(new ChildExitedError(`${this.name} exited (${this.exitInfo})`));
    }
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no reply to ${cmd} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const req: Request = args === undefined ? { id, cmd } : { id, cmd, args };
      this.proc.send(req, (err) => {
        if (err) {
          this.pending.delete(id);
          clearTimeout(timer);
          reject(err);
        }
      });
    });
  }

  /** kill ends the process (SIGKILL unless it is already gone) and waits up to 2 s for it. */
  async kill(): Promise<void> {
    if (this.exitInfo === undefined) {
      this.proc.kill("SIGKILL");
    }
    await Promise.race([this.exited, sleep(2000)]);
  }

  /** shutdown asks politely with `cmd`, waits up to `graceMs` for the exit, then kills. */
  async shutdown(cmd: string, graceMs = 3000): Promise<unknown> {
    let result: unknown;
    try {
      result = await this.call(cmd, undefined, graceMs);
      await Promise.race([this.exited, sleep(500)]);
    } finally {
      await this.kill();
    }
    return result;
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Live children, so the runner can kill them all on SIGINT or a watchdog. */
export const liveChildren = new Set<ChildHandle>();

export function spawnChild(
  name: string,
  file: string,
  execArgv: readonly string[] = [],
  preload: readonly string[] = [],
): ChildHandle {
  const c = new ChildHandle(name, file, [], execArgv, preload);
  liveChildren.add(c);
  void c.exited.then(() => liveChildren.delete(c));
  return c;
}

export function killAllChildrenSync(): void {
  for (const c of liveChildren) {
    const pid = c.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}
