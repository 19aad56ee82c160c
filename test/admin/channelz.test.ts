import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  type GetChannelRequestSchema,
  type GetChannelResponseSchema,
  type GetServerSocketsRequestSchema,
  type GetServerSocketsResponseSchema,
  type GetServersRequestSchema,
  type GetServersResponseSchema,
  type GetSocketRequestSchema,
  type GetSocketResponseSchema,
  type GetSubchannelRequestSchema,
  type GetSubchannelResponseSchema,
  type GetTopChannelsRequestSchema,
  type GetTopChannelsResponseSchema,
  ChannelConnectivityState_State as State,
} from "../../gen/grpc/channelz/v1/channelz_pb.js";
import {
  Channelz,
  createChannelzService,
  createMeshServer,
  createMeshTransport,
  grpcServiceDefinition,
} from "../../src/index.js";
import { OrderService, startScriptedOrders } from "../support/scripted-orders.js";

type Unary<I extends DescMessage, O extends DescMessage> = (
  req: MessageInitShape<I>,
) => Promise<MessageShape<O>>;

/** ChannelzClient is a grpc-js client of grpc.channelz.v1.Channelz, promisified. */
interface ChannelzClient {
  getTopChannels: Unary<typeof GetTopChannelsRequestSchema, typeof GetTopChannelsResponseSchema>;
  getChannel: Unary<typeof GetChannelRequestSchema, typeof GetChannelResponseSchema>;
  getSubchannel: Unary<typeof GetSubchannelRequestSchema, typeof GetSubchannelResponseSchema>;
  getServers: Unary<typeof GetServersRequestSchema, typeof GetServersResponseSchema>;
  getServerSockets: Unary<
    typeof GetServerSocketsRequestSchema,
    typeof GetServerSocketsResponseSchema
  >;
  getSocket: Unary<typeof GetSocketRequestSchema, typeof GetSocketResponseSchema>;
  close(): void;
}

function grpcJsChannelzClient(address: string): ChannelzClient {
  const Client = grpc.makeGenericClientConstructor(
    grpcServiceDefinition(Channelz),
    Channelz.typeName,
  );
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as Record<
    string,
    (req: unknown, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void
  > &
    grpc.Client;
  const unary =
    (name: string) =>
    (req: unknown): Promise<never> =>
      new Promise((resolve, reject) => {
        client[name]!.call(client, req, (err, res) => (err ? reject(err) : resolve(res as never)));
      });
  return {
    getTopChannels: unary("getTopChannels"),
    getChannel: unary("getChannel"),
    getSubchannel: unary("getSubchannel"),
    getServers: unary("getServers"),
    getServerSockets: unary("getServerSockets"),
    getSocket: unary("getSocket"),
    close: () => client.close(),
  };
}

describe("channelz through a grpc-js client", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it("reports the transport as a channel, its endpoints as subchannels, servers and their sockets", async () => {
    const good = await startScriptedOrders("good", () => ({ ok: true }));
    const bad = await startScriptedOrders("bad", () => ({ code: Code.Unavailable }));
    for (const s of [good, bad]) cleanups.push(() => s.server.close({ graceMs: 0 }));
    const target = `static:///${good.address},${bad.address}`;
    const transport = createMeshTransport({
      target,
      logger: false,
      policy: "round-robin",
      outlierDetection: { consecutiveFailures: 3, baseEjectionMs: 120_000, successRate: false },
      circuitBreaker: false,
    });
    cleanups.push(() => transport.close());
    const orders = createClient(OrderService, transport);
    await expect
      .poll(
        async () => {
          await orders.getOrder({ id: "x" }, { timeoutMs: 5_000 });
          return transport.snapshot().endpoints.find((e) => e.address === bad.address)?.status;
        },
        { timeout: 20_000, interval: 1 },
      )
      .toBe("ejected");
    const expected = transport.snapshot();

    const admin = createMeshServer({
      logger: false,
      routes: (r) =>
        r.service(
          Channelz,
          createChannelzService({
            transports: [transport],
            servers: () => [good.server, bad.server],
          }),
        ),
    });
    const { address } = await admin.listen();
    cleanups.push(() => admin.close({ graceMs: 0 }));
    const channelz = grpcJsChannelzClient(address);
    cleanups.push(() => channelz.close());

    const top = await channelz.getTopChannels({});
    expect(top.end).toBe(true);
    expect(top.channel).toHaveLength(1);
    const channel = top.channel[0]!;
    expect(channel.ref?.name).toBe(target);
    expect(channel.data?.target).toBe(target);
    expect(channel.data?.state?.state).toBe(State.READY);
    expect(channel.data?.callsStarted).toBe(BigInt(expected.calls.started));
    expect(channel.data?.callsSucceeded).toBe(BigInt(expected.calls.succeeded));
    expect(channel.data?.callsFailed).toBe(0n);
    // Clock times become wall times: the last call started before the snapshot was taken.
    const lastCallMs = timestampMs(channel.data!.lastCallStartedTimestamp!);
    const wallOfLastCall = expected.wallTimeMs - (expected.takenAt - expected.calls.lastStartedAt!);
    expect(Math.abs(lastCallMs - wallOfLastCall)).toBeLessThanOrEqual(1);
    expect(channel.subchannelRef.map((s) => s.name)).toEqual([good.address, bad.address]);

    const channelId = channel.ref!.channelId;
    expect((await channelz.getChannel({ channelId })).channel?.ref?.channelId).toBe(channelId);
    // Ids are stable: the next page after the only channel is empty.
    expect(await channelz.getTopChannels({ startChannelId: channelId + 1n })).toMatchObject({
      channel: [],
      end: true,
    });

    const badRef = channel.subchannelRef.find((s) => s.name === bad.address)!;
    const sub = (await channelz.getSubchannel({ subchannelId: badRef.subchannelId })).subchannel!;
    expect(sub.ref?.name).toBe(bad.address);
    const badSnap = expected.endpoints.find((e) => e.address === bad.address)!;
    expect(sub.data?.callsFailed).toBe(BigInt(badSnap.calls.failed));
    expect(sub.data?.callsFailed).toBeGreaterThanOrEqual(3n);
    expect(sub.data?.callsSucceeded).toBe(0n);
    expect(sub.data?.trace?.events.map((e) => e.description)).toEqual([
      `outlier detection ejected ${bad.address} (consecutive-failures)`,
    ]);
    const goodRef = channel.subchannelRef.find((s) => s.name === good.address)!;
    const goodSub = (await channelz.getSubchannel({ subchannelId: goodRef.subchannelId }))
      .subchannel!;
    expect(goodSub.data?.state?.state).toBe(State.READY);
    expect(goodSub.data?.callsSucceeded).toBeGreaterThan(0n);

    const servers = await channelz.getServers({});
    expect(servers.end).toBe(true);
    expect(servers.server.map((s) => s.ref?.name)).toEqual([good.address, bad.address]);
    const goodServer = servers.server[0]!;
    expect(goodServer.data?.callsSucceeded).toBe(goodSub.data?.callsSucceeded);
    expect(servers.server[1]?.data?.callsFailed).toBe(sub.data?.callsFailed);
    // Paging: one server per page.
    const first = await channelz.getServers({ maxResults: 1n });
    expect(first.server).toHaveLength(1);
    expect(first.end).toBe(false);

    const sockets = await channelz.getServerSockets({ serverId: goodServer.ref!.serverId });
    expect(sockets.end).toBe(true);
    expect(sockets.socketRef).toHaveLength(1);
    const socket = (await channelz.getSocket({ socketId: sockets.socketRef[0]!.socketId })).socket!;
    expect(socket.local?.address.case).toBe("tcpipAddress");
    const local = socket.local?.address.value as { ipAddress: Uint8Array; port: number };
    expect([...local.ipAddress]).toEqual([127, 0, 0, 1]);
    expect(local.port).toBe(good.server.address?.port);
    expect(socket.remote?.address.case).toBe("tcpipAddress");

    const missing = await channelz.getChannel({ channelId: 999_999n }).catch((e: unknown) => e);
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    expect((missing as grpc.ServiceError).details).toContain("999999");
  });

  it("validates its options", () => {
    expect(() => createChannelzService({ transports: {} as never })).toThrow(TypeError);
  });
});
