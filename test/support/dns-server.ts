import { createSocket, type RemoteInfo } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import * as dnsPacket from "dns-packet";

/** TestDnsBehavior is how the test DNS server treats a name: normally, or by failing. */
export type TestDnsBehavior = "answer" | "servfail" | "timeout" | "nxdomain";

/** TestSrv is one SRV record in the zone. */
export interface TestSrv {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

/** TestDnsQuery is one query the server received. */
export interface TestDnsQuery {
  readonly name: string;
  readonly type: string;
  readonly transport: "udp" | "tcp";
}

/**
 * TestDnsServer is a real DNS server on 127.0.0.1 (UDP, and TCP on the same
 * port) answering A, AAAA and SRV from a mutable zone. A name with no records
 * of the asked type answers NOERROR with an SOA (negative TTL `negativeTtl`);
 * a name absent from the zone answers NXDOMAIN.
 */
export interface TestDnsServer {
  /** server is `127.0.0.1:port`, for the resolver's `servers` option. */
  readonly server: string;
  readonly port: number;
  /** queries lists every query received, in order. */
  readonly queries: readonly TestDnsQuery[];
  /** count counts received queries for a name (and type, if given). */
  count(name: string, type?: string): number;
  setA(name: string, addresses: readonly string[], ttl: number): void;
  setAAAA(name: string, addresses: readonly string[], ttl: number): void;
  setSrv(name: string, records: readonly TestSrv[], ttl: number): void;
  /** remove deletes a name (all types): it then answers NXDOMAIN. */
  remove(name: string): void;
  /** behave sets how queries for `name` (or every name, with "*") are treated. */
  behave(name: string, behavior: TestDnsBehavior): void;
  /** truncate makes UDP answers come back empty with TC set, forcing TCP. */
  truncate: boolean;
  /** negativeTtl is the SOA TTL and MINIMUM sent with empty answers. */
  negativeTtl: number;
  close(): Promise<void>;
}

type Rr = { type: "A" | "AAAA"; data: string } | { type: "SRV"; data: TestSrv };

/** startDnsServer binds a TestDnsServer to an ephemeral loopback port. */
export async function startDnsServer(): Promise<TestDnsServer> {
  for (let tries = 0; ; tries++) {
    try {
      return await bind();
    } catch (e) {
      // The UDP port was free but its TCP twin was not; pick another.
      if (tries >= 5 || (e as NodeJS.ErrnoException).code !== "EADDRINUSE") throw e;
    }
  }
}

async function bind(): Promise<TestDnsServer> {
  const zone = new Map<string, { ttl: Map<string, number>; records: Rr[] }>();
  const behaviors = new Map<string, TestDnsBehavior>();
  const queries: TestDnsQuery[] = [];
  const key = (name: string): string => name.toLowerCase().replace(/\.$/, "");
  const entry = (name: string) => {
    let e = zone.get(key(name));
    if (e === undefined) {
      e = { ttl: new Map(), records: [] };
      zone.set(key(name), e);
    }
    return e;
  };
  const setRecords = (name: string, type: Rr["type"], rrs: Rr[], ttl: number): void => {
    const e = entry(name);
    e.records = e.records.filter((r) => r.type !== type).concat(rrs);
    e.ttl.set(type, ttl);
  };

  const udp = createSocket("udp4");
  await new Promise<void>((resolve, reject) => {
    udp.once("error", reject);
    udp.bind(0, "127.0.0.1", () => {
      udp.off("error", reject);
      resolve();
    });
  });
  const port = udp.address().port;
  const tcp: Server = createServer();
  const tcpSockets = new Set<Socket>();
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(port, "127.0.0.1", () => {
        tcp.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    udp.close();
    throw e;
  }

  const self: TestDnsServer = {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    count: (name, type) =>
      queries.filter((q) => key(q.name) === key(name) && (type === undefined || q.type === type))
        .length,
    setA: (name, addresses, ttl) =>
      setRecords(
        name,
        "A",
        addresses.map((data) => ({ type: "A", data })),
        ttl,
      ),
    setAAAA: (name, addresses, ttl) =>
      setRecords(
        name,
        "AAAA",
        addresses.map((data) => ({ type: "AAAA", data })),
        ttl,
      ),
    setSrv: (name, records, ttl) =>
      setRecords(
        name,
        "SRV",
        records.map((data) => ({ type: "SRV", data })),
        ttl,
      ),
    remove: (name) => {
      zone.delete(key(name));
    },
    behave: (name, behavior) => {
      behaviors.set(name === "*" ? "*" : key(name), behavior);
    },
    truncate: false,
    negativeTtl: 1,
    close: async () => {
      for (const s of tcpSockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]);
    },
  };

  const answer = (msg: Buffer, transport: "udp" | "tcp"): Buffer | undefined => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const q = query.questions?.[0];
    if (q === undefined) return undefined;
    queries.push({ name: q.name, type: q.type, transport });
    const behavior = behaviors.get(key(q.name)) ?? behaviors.get("*") ?? "answer";
    if (behavior === "timeout") return undefined;
    const e = zone.get(key(q.name));
    let rcode = 0;
    if (behavior === "servfail") rcode = 2;
    else if (behavior === "nxdomain" || e === undefined) rcode = 3;
    const answers: dnsPacket.Answer[] = [];
    const ttl = e?.ttl.get(q.type) ?? 0;
    if (rcode === 0 && e !== undefined && !(transport === "udp" && self.truncate)) {
      for (const r of e.records) {
        if (r.type !== q.type) continue;
        if (r.type === "SRV") {
          answers.push({ type: "SRV", name: q.name, ttl, data: { ...r.data } });
        } else {
          answers.push({ type: r.type, name: q.name, ttl, data: r.data });
        }
      }
    }
    const truncated = transport === "udp" && self.truncate && rcode === 0;
    return dnsPacket.encode({
      type: "response",
      id: query.id ?? 0,
      flags:
        dnsPacket.RECURSION_DESIRED |
        dnsPacket.RECURSION_AVAILABLE |
        (truncated ? dnsPacket.TRUNCATED_RESPONSE : 0) |
        rcode,
      questions: [q],
      answers,
      authorities:
        answers.length === 0 && rcode !== 2
          ? [
              {
                type: "SOA",
                name: "test",
                ttl: self.negativeTtl,
                data: {
                  mname: "ns.test",
                  rname: "admin.test",
                  serial: 1,
                  minimum: self.negativeTtl,
                },
              },
            ]
          : [],
    });
  };

  udp.on("message", (msg: Buffer, from: RemoteInfo) => {
    const out = answer(msg, "udp");
    if (out !== undefined) udp.send(out, from.port, from.address);
  });
  tcp.on("connection", (socket) => {
    tcpSockets.add(socket);
    socket.on("close", () => tcpSockets.delete(socket));
    socket.on("error", () => {});
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) return;
        const out = answer(buffered.subarray(2, 2 + len), "tcp");
        buffered = buffered.subarray(2 + len);
        if (out === undefined) continue;
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        socket.write(framed);
      }
    });
  });
  return self;
}
