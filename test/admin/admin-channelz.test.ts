import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channelz } from "../../gen/grpc/channelz/v1/channelz_pb.js";
import { grpcServiceDefinition, type RunningAdmin, serveAdmin } from "../../src/index.js";
import { callMany, failReplica, type MeshScenario, startMeshScenario } from "./mesh-scenario.js";

interface TopChannels {
  channel: {
    ref?: { channelId: bigint | string };
    data?: { target: string; callsStarted: bigint | string };
    subchannelRef: unknown[];
  }[];
}
interface Servers {
  server: { ref?: { serverId: bigint | string } }[];
}

let s: MeshScenario;
let admin: RunningAdmin;
let client: grpc.Client &
  Record<string, (req: unknown, cb: (e: unknown, r: unknown) => void) => void>;

function unary<T>(name: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    client[name]?.call(client, req, (e, r) => (e ? reject(e) : resolve(r as T)));
  });
}

beforeAll(async () => {
  s = await startMeshScenario();
  admin = await serveAdmin({ transports: [s.transport], servers: s.servers, channelz: true });
  const Client = grpc.makeGenericClientConstructor(
    grpcServiceDefinition(Channelz),
    Channelz.typeName,
  );
  client = new Client(admin.address, grpc.credentials.createInsecure()) as typeof client;
});
afterAll(async () => {
  client?.close();
  await admin?.close();
  await s?.close();
});

describe("admin server with channelz", () => {
  it("serves grpc.channelz.v1 to a grpc-js client and the dashboard on the same port", async () => {
    failReplica(s, 1);
    await callMany(s, 9);
    const top = await unary<TopChannels>("getTopChannels", {});
    expect(top.channel).toHaveLength(1);
    expect(top.channel[0]?.data?.target).toBe(s.transport.target);
    expect(Number(top.channel[0]?.data?.callsStarted)).toBeGreaterThanOrEqual(9);
    expect(top.channel[0]?.subchannelRef).toHaveLength(3);
    const servers = await unary<Servers>("getServers", {});
    expect(servers.server).toHaveLength(3);

    // HTTP/1.1 still reaches the page and the JSON, on the same port.
    const health = await fetch(new URL("/healthz", admin.url));
    expect(await health.json()).toEqual({ status: "ok" });
    const page = await fetch(admin.url);
    expect(await page.text()).toContain("<title>connect-mesh admin</title>");
    await expect
      .poll(
        async () => {
          await callMany(s, 3);
          const st = (await (await fetch(new URL("/api/state", admin.url))).json()) as {
            stats: { ejections: { address: string }[] };
          };
          return st.stats.ejections.map((e) => e.address);
        },
        { timeout: 20_000 },
      )
      .toContain(s.addresses[1]);
  });

  it("rejects a channelz option that is not a boolean", async () => {
    await expect(serveAdmin({ channelz: "yes" as never })).rejects.toThrow(
      'channelz "yes" must be a boolean',
    );
  });
});
