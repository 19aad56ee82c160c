// Spawns fixtures/order-replica.ts as a separate process and follows its stdout.

import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

const FIXTURE = fileURLToPath(new URL("./fixtures/order-replica.ts", import.meta.url));

/** ReplicaProcess is a running order-replica process. */
export interface ReplicaProcess {
  readonly child: ChildProcess;
  /** lines are its stdout lines so far. */
  readonly lines: string[];
  /** address is its `host:port`, once it printed "listening". */
  readonly address: string;
  /** kill sends SIGKILL and waits for the exit. */
  kill(): Promise<void>;
}

/** startReplicaProcess spawns a replica with `env` and waits until it listens. */
export async function startReplicaProcess(env: Record<string, string>): Promise<ReplicaProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", FIXTURE], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  let buf = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    lines.push(...parts);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Starting tsx on a busy host takes seconds: a generous bound, not a timing claim.
  await expect
    .poll(() => child.exitCode !== null || lines.some((l) => l.startsWith("listening ")), {
      timeout: 60_000,
      interval: 50,
    })
    .toBe(true);
  const line = lines.find((l) => l.startsWith("listening "));
  if (line === undefined) throw new Error(`replica ${env.FAULT_REPLICA} exited before listening`);
  return {
    child,
    lines,
    address: line.slice("listening ".length),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
