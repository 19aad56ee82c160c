import type { MessageInitShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import {
  type AddressSchema,
  type ChannelSchema,
  type ChannelTraceEventSchema,
  Channelz,
  ChannelConnectivityState_State as ConnectivityState,
  type ServerSchema,
  ChannelTraceEvent_Severity as Severity,
  type SocketSchema,
  type SubchannelSchema,
} from "../../gen/grpc/channelz/v1/channelz_pb.js";
import { parseAddress } from "../discovery/address.js";
import type {
  EndpointSnapshot,
  ServerSnapshot,
  ServerSnapshotSource,
  SocketSnapshot,
  TransportSnapshot,
  TransportSnapshotSource,
} from "../state/snapshot.js";
import { ipBytes } from "./ip-bytes.js";

export { Channelz };

/** ChannelzOptions lists what a channelz service reports: given once, or read on every call. */
export interface ChannelzOptions {
  /** transports are reported as top channels, their endpoints as subchannels. */
  readonly transports?:
    | readonly TransportSnapshotSource[]
    | (() => readonly TransportSnapshotSource[]);
  /** servers are reported as servers, their connections as sockets. */
  readonly servers?: readonly ServerSnapshotSource[] | (() => readonly ServerSnapshotSource[]);
}

/**
 * channelzRoutes registers `grpc.channelz.v1.Channelz` (see
 * createChannelzService) on a router: pass it to a mesh server's `routes`,
 * alone or next to other services:
 * `routes: (r) => { channelzRoutes({ transports, servers })(r); r.service(...); }`.
 * Options are validated here (TypeError).
 */
export function channelzRoutes(options: ChannelzOptions = {}): (router: ConnectRouter) => void {
  const impl = createChannelzService(options);
  return (router) => {
    router.service(Channelz, impl);
  };
}

/** CHANNELZ_MAX_RESULTS is the page size when a request asks for none (grpc-go's too). */
export const CHANNELZ_MAX_RESULTS = 100;

type ChannelInit = MessageInitShape<typeof ChannelSchema>;
type SubchannelInit = MessageInitShape<typeof SubchannelSchema>;
type ServerInit = MessageInitShape<typeof ServerSchema>;
type SocketInit = MessageInitShape<typeof SocketSchema>;
type TraceEventInit = MessageInitShape<typeof ChannelTraceEventSchema>;

/**
 * createChannelzService implements `grpc.channelz.v1.Channelz` from state
 * snapshots, so grpc tooling (grpcdebug, grpc-js's and grpc-go's channelz
 * clients) can read a mesh process: each transport is a top channel (target,
 * connectivity, logical call counts, breaker transitions as trace events),
 * each of its endpoints a subchannel (connection state, attempt counts,
 * ejections as trace events), each server a server (call counts over its
 * methods) with its HTTP/2 connections as sockets. Client sockets are not
 * reported. Ids are stable for the service's lifetime. Mount it with
 * `router.service(Channelz, createChannelzService({ transports, servers }))`
 * or channelzRoutes; a snapshot is taken per request, never on the call path.
 */
export function createChannelzService(options: ChannelzOptions = {}): ServiceImpl<typeof Channelz> {
  const transportsOf = listOf(options.transports, "transports");
  const serversOf = listOf(options.servers, "servers");
  // One id space for every entity, as grpc's own channelz has.
  let lastId = 0n;
  const objectIds = new WeakMap<object, bigint>();
  const keyIds = new Map<string, bigint>();
  const idOf = (source: object): bigint => {
    let id = objectIds.get(source);
    if (id === undefined) {
      id = ++lastId;
      objectIds.set(source, id);
    }
    return id;
  };
  const idOfKey = (key: string): bigint => {
    let id = keyIds.get(key);
    if (id === undefined) {
      id = ++lastId;
      keyIds.set(key, id);
    }
    return id;
  };
  const subchannelId = (channelId: bigint, address: string) =>
    idOfKey(`sub ${channelId} ${address}`);
  const socketId = (serverId: bigint, s: SocketSnapshot) =>
    idOfKey(`sock ${serverId} ${s.local} ${s.remote}`);

  const channels = () =>
    transportsOf()
      .map((t) => ({ id: idOf(t), snap: t.snapshot() }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const servers = () =>
    serversOf()
      .map((s) => ({ id: idOf(s), snap: s.snapshot() }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

  const channelMessage = (id: bigint, t: TransportSnapshot): ChannelInit => ({
    ref: { channelId: id, name: t.target },
    data: {
      state: { state: channelState(t) },
      target: t.target,
      callsStarted: BigInt(t.calls.started),
      callsSucceeded: BigInt(t.calls.succeeded),
      callsFailed: BigInt(t.calls.failed),
      ...timestampField(t, t.calls.lastStartedAt),
      trace: {
        events: t.breakers
          .flatMap((b) =>
            b.history.map(
              (h): TraceEventInit => ({
                description: `circuit breaker ${b.key}: ${h.from} -> ${h.to} (${h.reason})`,
                severity: h.to === "open" ? Severity.CT_WARNING : Severity.CT_INFO,
                timestamp: wallTimestamp(t, h.at),
              }),
            ),
          )
          .sort(byTimestamp),
      },
    },
    subchannelRef: t.endpoints.map((e) => ({
      subchannelId: subchannelId(id, e.address),
      name: e.address,
    })),
  });

  const subchannelMessage = (
    id: bigint,
    t: TransportSnapshot,
    e: EndpointSnapshot,
  ): SubchannelInit => ({
    ref: { subchannelId: id, name: e.address },
    data: {
      state: { state: connectivity(e.connection) },
      target: e.address,
      callsStarted: BigInt(e.calls.started),
      callsSucceeded: BigInt(e.calls.succeeded),
      callsFailed: BigInt(e.calls.failed),
      ...timestampField(t, e.calls.lastStartedAt),
      trace: {
        events: (e.ejection?.history ?? []).map(
          (h): TraceEventInit => ({
            description:
              h.type === "restored"
                ? `outlier detection restored ${e.address}`
                : `outlier detection ${h.type === "ejected" ? "ejected" : "skipped ejecting"} ${e.address} (${h.reason ?? "unknown"})`,
            severity: h.type === "ejected" ? Severity.CT_WARNING : Severity.CT_INFO,
            timestamp: wallTimestamp(t, h.at),
          }),
        ),
      },
    },
  });

  const serverMessage = (id: bigint, s: ServerSnapshot): ServerInit => ({
    ref: { serverId: id, name: s.address ?? "" },
    data: {
      callsStarted: BigInt(s.calls.started),
      callsSucceeded: BigInt(s.calls.succeeded),
      callsFailed: BigInt(s.calls.failed),
      ...timestampField(s, s.calls.lastStartedAt),
    },
  });

  const socketMessage = (id: bigint, s: SocketSnapshot): SocketInit => ({
    ref: { socketId: id, name: `${s.remote} -> ${s.local}` },
    data: {},
    local: addressMessage(s.local),
    remote: addressMessage(s.remote),
  });

  const findSubchannel = (id: bigint) => {
    for (const c of channels()) {
      for (const e of c.snap.endpoints) {
        if (subchannelId(c.id, e.address) === id) return { t: c.snap, e };
      }
    }
    return undefined;
  };

  const findSocket = (id: bigint) => {
    for (const s of servers()) {
      for (const sock of s.snap.sockets) {
        if (socketId(s.id, sock) === id) return sock;
      }
    }
    return undefined;
  };

  return {
    getTopChannels(req) {
      const page = paginate(channels(), req.startChannelId, req.maxResults);
      return {
        channel: page.items.map((c) => channelMessage(c.id, c.snap)),
        end: page.end,
      };
    },
    getChannel(req) {
      const c = channels().find((x) => x.id === req.channelId);
      if (c === undefined) throw notFound("channel", req.channelId);
      return { channel: channelMessage(c.id, c.snap) };
    },
    getSubchannel(req) {
      const found = findSubchannel(req.subchannelId);
      if (found === undefined) throw notFound("subchannel", req.subchannelId);
      return { subchannel: subchannelMessage(req.subchannelId, found.t, found.e) };
    },
    getServers(req) {
      const page = paginate(servers(), req.startServerId, req.maxResults);
      return {
        server: page.items.map((s) => serverMessage(s.id, s.snap)),
        end: page.end,
      };
    },
    getServer(req) {
      const s = servers().find((x) => x.id === req.serverId);
      if (s === undefined) throw notFound("server", req.serverId);
      return { server: serverMessage(s.id, s.snap) };
    },
    getServerSockets(req) {
      const s = servers().find((x) => x.id === req.serverId);
      if (s === undefined) throw notFound("server", req.serverId);
      const sockets = s.snap.sockets
        .map((sock) => ({ id: socketId(s.id, sock), sock }))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const page = paginate(sockets, req.startSocketId, req.maxResults);
      return {
        socketRef: page.items.map((x) => ({
          socketId: x.id,
          name: `${x.sock.remote} -> ${x.sock.local}`,
        })),
        end: page.end,
      };
    },
    getSocket(req) {
      const sock = findSocket(req.socketId);
      if (sock === undefined) throw notFound("socket", req.socketId);
      return { socket: socketMessage(req.socketId, sock) };
    },
  };
}

function listOf<T>(
  value: readonly T[] | (() => readonly T[]) | undefined,
  name: string,
): () => readonly T[] {
  if (value === undefined) return () => [];
  if (typeof value === "function") return value;
  if (!Array.isArray(value)) {
    throw new TypeError(`channelz ${name} must be an array or a function returning one`);
  }
  const fixed = [...value];
  return () => fixed;
}

// paginate follows channelz's contract: ids >= start, at most max (0: the
// default page), `end` when nothing is left after the page.
function paginate<T extends { readonly id: bigint }>(
  sorted: readonly T[],
  start: bigint,
  max: bigint,
): { items: T[]; end: boolean } {
  const limit = max > 0n ? Number(max) : CHANNELZ_MAX_RESULTS;
  const from = sorted.filter((x) => x.id >= start);
  return { items: from.slice(0, limit), end: from.length <= limit };
}

function notFound(what: string, id: bigint): ConnectError {
  return new ConnectError(`channelz: no ${what} with id ${id}`, Code.NotFound);
}

// Snapshot times are clock times: channelz wants wall time, in whole milliseconds here.
function wallTimestamp(
  snap: { readonly takenAt: number; readonly wallTimeMs: number },
  clockMs: number,
): Timestamp {
  return timestampFromMs(Math.round(snap.wallTimeMs - (snap.takenAt - clockMs)));
}

function timestampField(
  snap: { readonly takenAt: number; readonly wallTimeMs: number },
  clockMs: number | null,
): { lastCallStartedTimestamp?: Timestamp } {
  return clockMs === null ? {} : { lastCallStartedTimestamp: wallTimestamp(snap, clockMs) };
}

function byTimestamp(a: TraceEventInit, b: TraceEventInit): number {
  const ta = a.timestamp as Timestamp;
  const tb = b.timestamp as Timestamp;
  return ta.seconds === tb.seconds ? ta.nanos - tb.nanos : ta.seconds < tb.seconds ? -1 : 1;
}

// The connection states of the mesh's HTTP/2 sessions, as gRPC connectivity states.
function connectivity(connection: string): ConnectivityState {
  switch (connection) {
    case "open":
    case "idle":
    case "verifying":
      return ConnectivityState.READY;
    case "connecting":
      return ConnectivityState.CONNECTING;
    case "error":
      return ConnectivityState.TRANSIENT_FAILURE;
    case "closed":
    case "none":
      return ConnectivityState.IDLE;
    default:
      return ConnectivityState.UNKNOWN;
  }
}

// A channel is as good as its best endpoint, as a gRPC channel's aggregated state.
function channelState(t: TransportSnapshot): ConnectivityState {
  if (t.closed) return ConnectivityState.SHUTDOWN;
  const ready = t.endpoints.filter((e) => e.status !== "ejected");
  const states = ready.map((e) => connectivity(e.connection));
  if (states.includes(ConnectivityState.READY)) return ConnectivityState.READY;
  if (states.includes(ConnectivityState.CONNECTING)) return ConnectivityState.CONNECTING;
  if (t.resolver.resolved && (ready.length === 0 || t.resolver.lastError !== null)) {
    return ConnectivityState.TRANSIENT_FAILURE;
  }
  if (states.includes(ConnectivityState.TRANSIENT_FAILURE)) {
    return ConnectivityState.TRANSIENT_FAILURE;
  }
  return ConnectivityState.IDLE;
}

function addressMessage(hostPort: string): MessageInitShape<typeof AddressSchema> {
  try {
    const { host, port } = parseAddress(hostPort);
    const bytes = ipBytes(host);
    if (bytes !== undefined) {
      return { address: { case: "tcpipAddress", value: { ipAddress: bytes, port } } };
    }
  } catch {
    // Not host:port: reported by name below.
  }
  return { address: { case: "otherAddress", value: { name: hostPort } } };
}
