import { type Client, Code, createClient } from "@connectrpc/connect";
import {
  createFaultInjector,
  createMeshServer,
  createMeshTransport,
  createMetrics,
  type FaultInjector,
  type MeshMetrics,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

/** MeshScenario is 3 real echo replicas with fault injectors behind one mesh transport. */
export interface MeshScenario {
  readonly servers: readonly MeshServer[];
  readonly faults: readonly FaultInjector[];
  readonly addresses: readonly string[];
  readonly transport: MeshTransport;
  readonly metrics: MeshMetrics;
  readonly echo: Client<typeof EchoService>;
  close(): Promise<void>;
}

/**
 * startMeshScenario serves EchoService on 3 loopback ports and builds a
 * transport that ejects an endpoint after 3 failures in a row (for a minute)
 * and opens a method's breaker at 50% failures over 6 calls; no retries
 * and round robin unless told otherwise.
 */
export async function startMeshScenario(
  options: { readonly retry?: boolean; readonly policy?: "p2c-ewma" | "round-robin" } = {},
): Promise<MeshScenario> {
  const metrics = await createMetrics();
  const faults = [0, 1, 2].map(() => createFaultInjector());
  const servers = faults.map((f, i) =>
    createMeshServer({
      routes: (r) => r.service(EchoService, createEchoImpl(`replica-${i + 1}`)),
      faults: f,
      logger: false,
      metrics,
    }),
  );
  const bound = await Promise.all(servers.map((s) => s.listen()));
  const addresses = bound.map((b) => b.address);
  const transport = createMeshTransport({
    target: `static:///${addresses.join(",")}`,
    logger: false,
    metrics,
    policy: options.policy ?? "round-robin",
    outlierDetection: {
      consecutiveFailures: 3,
      successRate: false,
      baseEjectionMs: 60_000,
      maxEjectionPercent: 50,
    },
    circuitBreaker: { minimumCalls: 6, failureRateThreshold: 0.5, openMs: 60_000 },
    // Echo gets an idempotency key from the transport, which makes it safe to retry.
    ...(options.retry === true ? {} : { retry: false as const }),
  });
  return {
    servers,
    faults,
    addresses,
    transport,
    metrics,
    echo: createClient(EchoService, transport),
    async close() {
      await transport.close();
      await Promise.all(servers.map((s) => s.close({ graceMs: 0 })));
    },
  };
}

/** failReplica makes one replica fail every call with UNAVAILABLE. */
export function failReplica(s: MeshScenario, index: number): void {
  s.faults[index]?.set({ default: { abortPercent: 100, abortCode: Code.Unavailable } });
}

/** callMany makes `n` echo calls one after another, ignoring their errors. */
export async function callMany(
  s: MeshScenario,
  n: number,
  headers: Record<string, string> = {},
  failCode = 0,
): Promise<void> {
  for (let i = 0; i < n; i++) {
    await s.echo.echo({ failCode }, { headers, timeoutMs: 5_000 }).catch(() => undefined);
  }
}
