import type { StackOptions } from "../protocol.js";

/** EchoServerHandle is a running echo server inside a server child. */
export interface EchoServerHandle {
  readonly port: number;
  close(): Promise<void>;
}

/** EchoClientHandle makes Echo calls; `echo` resolves with the response payload. */
export interface EchoClientHandle {
  /** echo makes one unary call (EchoService/Echo, or the NO_SIDE_EFFECTS echo with `method`). */
  echo(payload: Uint8Array): Promise<Uint8Array>;
  /**
   * serverStream makes one EchoServerStream call asking for `count` copies of
   * `payload` and hands each to `onMessage`; returning false from it cancels
   * the rest of the stream (the promise then resolves).
   */
  serverStream(
    payload: Uint8Array,
    count: number,
    onMessage: (payload: Uint8Array) => boolean,
  ): Promise<void>;
  /** openBidi starts one EchoBidi stream for ping-pong round trips. */
  openBidi(): BidiHandle;
  close(): Promise<void>;
}

/** BidiHandle is one open EchoBidi stream. */
export interface BidiHandle {
  /** roundTrip sends one message and resolves with the answer to it. */
  roundTrip(payload: Uint8Array): Promise<Uint8Array>;
  /** close half-closes the stream and waits (briefly) for the server to end it. */
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

/** EchoMethod is which unary method `echo` calls (stack option `method`). */
export type EchoMethod = "echo" | "no-side-effects";

/** echoMethodOption reads the `method` option; anything else is a configuration bug. */
export function echoMethodOption(options: StackOptions): EchoMethod {
  const v = options.method ?? "echo";
  if (v !== "echo" && v !== "no-side-effects") {
    throw new TypeError(
      `stack option method must be "echo" or "no-side-effects", got ${String(v)}`,
    );
  }
  return v;
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
  const pick = (): EchoClientHandle => {
    const c = clients[next] as EchoClientHandle;
    next = (next + 1) % clients.length;
    return c;
  };
  return {
    echo: (payload) => pick().echo(payload),
    serverStream: (payload, count, onMessage) => pick().serverStream(payload, count, onMessage),
    openBidi: () => pick().openBidi(),
    async close() {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}
