import { randomInt } from "node:crypto";
import { createSocket, type RemoteInfo } from "node:dgram";
import { isIP, Socket } from "node:net";
import type * as dnsPacket from "dns-packet";
import { type Clock, type ClockTimer, systemClock } from "../clock.js";
import { lazyModule } from "../lazy-module.js";
import { stripUndefined } from "../strip-undefined.js";
import type { HostPort } from "./address.js";
import { parseDnsServer } from "./dns-target.js";

// The DNS wire codec loads with the first query: only dns: targets need it
// (about 2 MB of RSS a process that never resolves DNS does not pay).
const loadDnsPacket = lazyModule<typeof dnsPacket>("dns-packet");

/** DnsRecordType is a record type the DNS client can ask for. */
export type DnsRecordType = "A" | "AAAA" | "SRV";

/** DnsRecord is one answer record; `ttl` is in seconds, as on the wire. */
export type DnsRecord =
  | {
      readonly type: "A" | "AAAA";
      readonly name: string;
      readonly ttl: number;
      readonly address: string;
    }
  | {
      readonly type: "SRV";
      readonly name: string;
      readonly ttl: number;
      readonly priority: number;
      readonly weight: number;
      readonly port: number;
      /** target is the host name, without a trailing dot; "." means "no service". */
      readonly target: string;
    };

/**
 * DnsResponse is an authoritative-enough answer: NOERROR (possibly with no
 * records) or NXDOMAIN. Both are answers, not failures.
 */
export interface DnsResponse {
  readonly rcode: "NOERROR" | "NXDOMAIN";
  /** records of the asked type, owned by the name or its CNAME chain. */
  readonly records: readonly DnsRecord[];
  /**
   * ttlSeconds is how long the answer may be cached: the smallest TTL of the
   * records and CNAMEs used, or for an empty answer the negative-caching TTL of
   * the SOA in the authority section (RFC 2308); undefined when neither exists.
   */
  readonly ttlSeconds: number | undefined;
}

/**
 * DnsQueryError is a query that got no usable answer after every attempt:
 * `code` is TIMEOUT, NETWORK (socket error), BAD_RESPONSE (undecodable),
 * CLOSED (the client was closed), or the server's rcode (SERVFAIL, REFUSED,
 * NOTIMP, FORMERR…).
 */
export class DnsQueryError extends Error {
  override readonly name = "DnsQueryError";
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * DnsClientOptions configures createDnsClient. Defaults (DNS_CLIENT_DEFAULTS):
 * timeoutMs 2_000 per attempt, attempts 2, tcpFallback true, systemClock.
 */
export interface DnsClientOptions {
  /** servers to ask, as `ip` or `ip:port` (`[ipv6]:port`); at least one. */
  readonly servers: readonly string[];
  /** timeoutMs bounds one attempt (UDP, plus TCP after truncation); > 0. */
  readonly timeoutMs?: number;
  /** attempts per query, rotating through the servers; integer >= 1. */
  readonly attempts?: number;
  /** tcpFallback retries a truncated UDP answer over TCP (RFC 7766). */
  readonly tcpFallback?: boolean;
  /** clock times the attempts. */
  readonly clock?: Clock;
}

/** DNS_CLIENT_DEFAULTS are the defaults documented on DnsClientOptions. */
export const DNS_CLIENT_DEFAULTS = Object.freeze({
  // glibc waits 5 s per try; a service-discovery poll would rather fail fast
  // and keep its last-known endpoints than hold a resolution open that long.
  timeoutMs: 2_000,
  // "Retry once": one lost UDP datagram should not cost an error event.
  attempts: 2,
  tcpFallback: true,
  clock: systemClock,
});

/**
 * DnsClient asks DNS servers for A, AAAA and SRV records and returns their
 * TTLs, which Node's `dns` module does not do for SRV.
 */
export interface DnsClient {
  /**
   * query asks for `name`'s records of `type`. It resolves on NOERROR or
   * NXDOMAIN and rejects with a DnsQueryError on timeout or another rcode
   * after all attempts, or with the signal's reason when aborted.
   */
  query(name: string, type: DnsRecordType, signal?: AbortSignal): Promise<DnsResponse>;
  /** close aborts queries in flight and refuses new ones. */
  close(): void;
}

// RFC 9715 / DNS flag day 2020: 1232 bytes avoids IP fragmentation on every
// common path while fitting far more records than the classic 512.
const EDNS_UDP_PAYLOAD_SIZE = 1232;

/**
 * createDnsClient builds a minimal stub resolver over UDP, with `dns-packet`
 * for the wire format. Each attempt uses a fresh socket (a fresh random source
 * port) and a random query id, and accepts only a response from the server it
 * asked that echoes the id and question, which is the usual defence against
 * spoofed answers. Attempt n goes to server n mod servers.length. A response
 * with the TC bit is retried over TCP to the same server. Sockets and timers
 * do not keep the process alive and are released when a query settles.
 */
export function createDnsClient(options: DnsClientOptions): DnsClient {
  const { servers, timeoutMs, attempts, tcpFallback, clock } = {
    ...DNS_CLIENT_DEFAULTS,
    ...stripUndefined(options),
  };
  if (!Array.isArray(servers) || servers.length === 0) {
    throw new RangeError(`servers ${JSON.stringify(servers)} must list at least one DNS server`);
  }
  const parsedServers = servers.map((s) => {
    const parsed = parseDnsServer(s);
    if (typeof parsed === "string") throw new RangeError(`DNS server ${parsed}`);
    return parsed;
  });
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RangeError(`timeoutMs ${timeoutMs} must be a finite number > 0`);
  }
  if (!Number.isInteger(attempts) || attempts < 1) {
    throw new RangeError(`attempts ${attempts} must be an integer >= 1`);
  }
  const closing = new AbortController();

  const attempt = async (
    server: HostPort,
    name: string,
    type: DnsRecordType,
    signal: AbortSignal,
  ): Promise<dnsPacket.DecodedPacket> => {
    const id = randomInt(0, 0x10000);
    const query = loadDnsPacket().encode({
      type: "query",
      id,
      flags: loadDnsPacket().RECURSION_DESIRED,
      questions: [{ type, name, class: "IN" }],
      additionals: [
        {
          type: "OPT",
          name: ".",
          udpPayloadSize: EDNS_UDP_PAYLOAD_SIZE,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    });
    const isAnswer = (p: dnsPacket.DecodedPacket): boolean => {
      const q = p.questions?.[0];
      return (
        p.id === id &&
        p.flag_qr &&
        q !== undefined &&
        q.type === type &&
        q.name.toLowerCase() === name.toLowerCase()
      );
    };
    const response = await withTimeout(clock, timeoutMs, signal, (s) =>
      udpExchange(server, query, isAnswer, s),
    );
    if (!response.flag_tc || !tcpFallback) return response;
    // Truncated: the server has more records than fit in a datagram.
    return withTimeout(clock, timeoutMs, signal, (s) => tcpExchange(server, query, isAnswer, s));
  };

  return {
    async query(name, type, signal) {
      const qname = name.endsWith(".") ? name.slice(0, -1) : name;
      const signals = signal === undefined ? [closing.signal] : [closing.signal, signal];
      const combined = AbortSignal.any(signals);
      let lastError: DnsQueryError | undefined;
      for (let i = 0; i < attempts; i++) {
        combined.throwIfAborted();
        const server = parsedServers[i % parsedServers.length] as HostPort;
        const where = `${type} ${qname} from ${server.host}:${server.port}`;
        let response: dnsPacket.DecodedPacket;
        try {
          response = await attempt(server, qname, type, combined);
        } catch (e) {
          if (combined.aborted) throw combined.reason;
          lastError =
            e instanceof DnsQueryError
              ? new DnsQueryError(`${where}: ${e.message}`, e.code, { cause: e.cause })
              : new DnsQueryError(`${where}: ${String(e)}`, "NETWORK", { cause: e });
          continue;
        }
        const rcode = (response as { rcode?: string }).rcode ?? "NOERROR";
        if (rcode === "NOERROR" || rcode === "NXDOMAIN") {
          return readResponse(response, qname, type, rcode);
        }
        lastError = new DnsQueryError(`${where}: server answered ${rcode}`, rcode);
      }
      throw lastError as DnsQueryError;
    },
    close() {
      closing.abort(new DnsQueryError("DNS client closed", "CLOSED"));
    },
  };
}

function readResponse(
  p: dnsPacket.DecodedPacket,
  qname: string,
  type: DnsRecordType,
  rcode: "NOERROR" | "NXDOMAIN",
): DnsResponse {
  const answers = p.answers ?? [];
  // Follow the CNAME chain from the asked name: a recursive server returns the
  // aliases followed by the final records, all in the answer section.
  const owners = new Set([qname.toLowerCase()]);
  let ttl: number | undefined;
  const minTtl = (t: number | undefined): void => {
    const v = t ?? 0;
    ttl = ttl === undefined ? v : Math.min(ttl, v);
  };
  for (let grew = true; grew; ) {
    grew = false;
    for (const a of answers) {
      if (a.type !== "CNAME" || !owners.has(a.name.toLowerCase())) continue;
      const alias = a.data.toLowerCase();
      if (!owners.has(alias)) {
        owners.add(alias);
        minTtl(a.ttl);
        grew = true;
      }
    }
  }
  const records: DnsRecord[] = [];
  for (const a of answers) {
    if (!owners.has(a.name.toLowerCase())) continue;
    if (type === "SRV" && a.type === "SRV") {
      const t = a.data.target;
      records.push({
        type: "SRV",
        name: a.name,
        ttl: a.ttl ?? 0,
        priority: a.data.priority ?? 0,
        weight: a.data.weight ?? 0,
        port: a.data.port,
        target: t === "" || t === "." ? "." : t.endsWith(".") ? t.slice(0, -1) : t,
      });
      minTtl(a.ttl);
    } else if ((type === "A" || type === "AAAA") && a.type === type) {
      // dns-packet decodes A and AAAA into strings; check in case a server
      // sent a malformed rdata length.
      if (isIP(a.data) === (type === "A" ? 4 : 6)) {
        records.push({ type, name: a.name, ttl: a.ttl ?? 0, address: a.data });
        minTtl(a.ttl);
      }
    }
  }
  if (records.length === 0) {
    ttl = undefined;
    for (const a of p.authorities ?? []) {
      if (a.type === "SOA") {
        // RFC 2308 §5: negative answers are cached for min(SOA TTL, MINIMUM).
        const negative = Math.min(a.ttl ?? 0, a.data.minimum ?? 0);
        ttl = ttl === undefined ? negative : Math.min(ttl, negative);
      }
    }
  }
  return { rcode, records, ttlSeconds: ttl };
}

/** withTimeout runs `fn` with a signal that aborts on timeout or on `signal`. */
async function withTimeout<T>(
  clock: Clock,
  timeoutMs: number,
  signal: AbortSignal,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = new AbortController();
  const timer: ClockTimer = clock.setTimeout(() => {
    timeout.abort(new DnsQueryError(`no answer within ${timeoutMs} ms`, "TIMEOUT"));
  }, timeoutMs);
  try {
    const combined = AbortSignal.any([signal, timeout.signal]);
    return await fn(combined);
  } finally {
    clock.clearTimeout(timer);
  }
}

/** abortable settles with `signal`'s reason when it aborts, running `cleanup` always. */
function abortable<T>(
  signal: AbortSignal,
  run: (resolve: (v: T) => void, reject: (e: unknown) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    let cleanup: () => void = () => {};
    const onAbort = (): void => {
      finish();
      reject(signal.reason);
    };
    const finish = (): void => {
      signal.removeEventListener("abort", onAbort);
      cleanup();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    cleanup = run(
      (v) => {
        finish();
        resolve(v);
      },
      (e) => {
        finish();
        reject(e);
      },
    );
  });
}

function udpExchange(
  server: HostPort,
  query: Buffer,
  isAnswer: (p: dnsPacket.DecodedPacket) => boolean,
  signal: AbortSignal,
): Promise<dnsPacket.DecodedPacket> {
  return abortable(signal, (resolve, reject) => {
    const socket = createSocket(isIP(server.host) === 6 ? "udp6" : "udp4");
    socket.unref();
    socket.on("error", (e) => reject(e));
    socket.on("message", (msg: Buffer, from: RemoteInfo) => {
      // Ignore anything that is not the answer to this query from this server:
      // a stray or spoofed datagram must not end the attempt.
      if (from.port !== server.port || !sameIp(from.address, server.host)) return;
      let p: dnsPacket.DecodedPacket;
      try {
        p = loadDnsPacket().decode(msg);
      } catch {
        return;
      }
      if (isAnswer(p)) resolve(p);
    });
    socket.send(query, server.port, server.host, (e) => {
      if (e) reject(e);
    });
    return () => {
      try {
        socket.close();
      } catch {
        // Already closed after an error.
      }
    };
  });
}

function tcpExchange(
  server: HostPort,
  query: Buffer,
  isAnswer: (p: dnsPacket.DecodedPacket) => boolean,
  signal: AbortSignal,
): Promise<dnsPacket.DecodedPacket> {
  return abortable(signal, (resolve, reject) => {
    const socket = new Socket();
    socket.unref();
    let buffered = Buffer.alloc(0);
    socket.on("error", (e) => reject(e));
    socket.on("close", () => reject(new DnsQueryError("TCP connection closed early", "NETWORK")));
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // RFC 1035 §4.2.2: each TCP message is prefixed with its 2-byte length.
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) return;
        const msg = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        let p: dnsPacket.DecodedPacket;
        try {
          p = loadDnsPacket().decode(msg);
        } catch (e) {
          reject(new DnsQueryError("undecodable TCP response", "BAD_RESPONSE", { cause: e }));
          return;
        }
        if (isAnswer(p)) {
          resolve(p);
          return;
        }
      }
    });
    socket.connect(server.port, server.host, () => {
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      socket.write(framed);
    });
    return () => socket.destroy();
  });
}

function sameIp(a: string, b: string): boolean {
  // A udp6 socket may report an IPv4 peer as ::ffff:1.2.3.4.
  const norm = (ip: string): string => ip.toLowerCase().replace(/^::ffff:(?=\d+\.)/, "");
  return norm(a) === norm(b);
}
