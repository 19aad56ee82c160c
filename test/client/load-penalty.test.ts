import { Code, ConnectError, createClient, type ServiceImpl } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import {
  createMeshServer,
  createMeshTransport,
  type MeshServer,
  type MeshTransport,
} from "../../src/index.js";
import { createEchoImpl, EchoService } from "../support/echo-service.js";

interface Replica {
  readonly server: MeshServer;
  readonly address: string;
  handled: number;
}

const servers: MeshServer[] = [];
const transports: MeshTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  for (const s of servers.splice(0)) await s.close({ graceMs: 0 });
});

// The weak replica serves one call at a time and sheds the rest with a long
// pushback: with the penalty every shed answer counts as a call in flight to
// it for the rest of the test, so after a few it is the costliest endpoint
// by far. (Measured here: 3-4 shed with the penalty, 38-56 without.)
const WEAK_PUSHBACK_MS = 60_000;
const CALLERS = 6;
const CALLS_PER_CALLER = 40;

async function startReplica(weak: boolean): Promise<Replica> {
  const impl = createEchoImpl();
  const replica = { handled: 0 } as Replica;
  const counted: ServiceImpl<typeof EchoService> = {
    ...impl,
    echo(req, ctx) {
      replica.handled++;
      return impl.echo(req, ctx);
    },
  };
  const server = createMeshServer({
    routes: (r) => r.service(EchoService, counted),
    logger: false,
    ...(weak ? { concurrencyLimit: { maxInFlight: 1, pushbackMs: WEAK_PUSHBACK_MS } } : {}),
  });
  servers.push(server);
  const bound = await server.listen();
  return Object.assign(replica, { server, address: bound.address });
}

async function run(loadPenalty: false | undefined) {
  const replicas = [await startReplica(false), await startReplica(false), await startReplica(true)];
  const transport = createMeshTransport({
    target: `static:///${replicas.map((r) => r.address).join(",")}`,
    logger: false,
    // Only the balancer is under test: no retry, breaker or ejection.
    retry: false,
    circuitBreaker: false,
    outlierDetection: false,
    ...(loadPenalty === undefined ? {} : { loadPenalty }),
  });
  transports.push(transport);
  const echo = createClient(EchoService, transport);
  let shed = 0;
  let ok = 0;
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      for (let i = 0; i < CALLS_PER_CALLER; i++) {
        try {
          await echo.echo({ delayMs: 20 });
          ok++;
        } catch (e) {
          expect(ConnectError.from(e).code).toBe(Code.ResourceExhausted);
          shed++;
        }
      }
    }),
  );
  return { shed, ok, weak: replicas[2]!, total: CALLERS * CALLS_PER_CALLER };
}

describe("load-aware balancing (load penalty)", () => {
  it("on by default: the weak replica sheds a few calls, then p2c leaves it alone", async () => {
    const { shed, ok, weak, total } = await run(undefined);
    expect(shed + ok).toBe(total);
    expect(shed).toBeLessThanOrEqual(2 * CALLERS);
    // Until the first shed answer the weak replica may serve a few calls.
    expect(weak.handled).toBeLessThanOrEqual(total / 3);
  });

  it("off: p2c keeps sending the weak replica calls it sheds", async () => {
    const { shed, ok, total } = await run(false);
    expect(shed + ok).toBe(total);
    // Shed answers are fast, so without the penalty p2c even likes the weak replica.
    expect(shed).toBeGreaterThan(20);
  });
});
