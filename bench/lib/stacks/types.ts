import type { StackOptions } from "../protocol.js";

/** EchoServerHandle is a running echo server inside a server child. */
export interface EchoServerHandle {
  readonly port: number;
  close(): Promise<void>;
}

/** EchoClientHandle makes unary Echo calls; `echo` resolves with the response payload. */
export interface EchoClientHandle {
  echo(payload: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Stack is one implementation (grpc-js, stock Connect, connect-mesh) of both ends. */
export interface Stack {
  startServer(options: StackOptions): Promise<EchoServerHandle>;
  createClient(targets: readonly string[], options: StackOptions): EchoClientHandle;
}

/** numberOption reads a numeric stack option, with a default. */
export function numberOption(options: StackOptions, key: string, fallback: number): number {
  const v = options[key];
  return typeof v === "number" && Number.isFinite(v) ? v : fallback;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * roundRobin spreads calls over one client per target. Stacks without their
 * own balancing use it when a scenario starts more than one server.
 */
export function roundRobin(clients: readonly EchoClientHandle[]): EchoClientHandle {
  if (clients.length === 0) {
    throw new Error("roundRobin: no targets");
  }
  if (clients.length === 1) {
    return clients[0] as EchoClientHandle;
  }
  let next = 0;
  return {
    echo(payload) {
      const c = clients[next] as EchoClientHandle;
      next = (next + 1) % clients.length;
      return c.echo(payload);
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}
