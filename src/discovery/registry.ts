import type { Resolver } from "./resolver.js";

/**
 * Registration is one server endpoint announcing itself under a service name.
 * Stored records follow grpc-go's etcd naming format:
 * `<prefix>/<service>/<instanceId>` → `{"Addr":"host:port","Metadata":{...}}`.
 */
export interface Registration {
  /** service is the name clients resolve (`mesh:///orders` → `orders`). */
  readonly service: string;
  /** instanceId identifies this replica; unique per service. */
  readonly instanceId: string;
  /** address is `host:port` (IPv6 in brackets). */
  readonly address: string;
  /** metadata: `id`, `zone`, `version`, `weight` (1..65535), `protocol`, and any other strings. */
  readonly metadata: Readonly<Record<string, string>>;
}

/** Registered is a live registration; deregister removes it (idempotent). */
export interface Registered {
  deregister(): Promise<void>;
}

/** RegistryEvent is what a registry reports to logging and metrics. */
export type RegistryEvent =
  | { readonly type: "registered"; readonly registration: Registration }
  | { readonly type: "deregistered"; readonly registration: Registration }
  | { readonly type: "lease-lost"; readonly registration: Registration; readonly error?: unknown }
  | { readonly type: "re-registered"; readonly registration: Registration }
  | { readonly type: "error"; readonly error: unknown };

/**
 * ServiceRegistry is a discovery backend that servers register with and
 * clients resolve through: the embedded mesh registry, etcd, or your own.
 */
export interface ServiceRegistry {
  /** name is the target scheme this registry serves (`mesh`, `etcd`). */
  readonly name: string;
  /**
   * endpoints says where the registry lives (etcd client addresses), so that
   * errors can name them; optional.
   */
  readonly endpoints?: readonly string[];
  /** register announces an endpoint until deregistered or the registry closes. */
  register(registration: Registration): Promise<Registered>;
  /** resolver watches one service's endpoints. */
  resolver(service: string): Resolver;
  /** close deregisters what it registered and releases connections. */
  close(): Promise<void>;
}

/**
 * parseRegistrationRecord reads a stored record value. It returns the address,
 * weight and metadata, or a string saying why the record is bad: not JSON, no
 * `Addr`, an address that is not host:port, port 0 or > 65535, or a weight
 * outside 1..65535. Resolvers skip bad records with a `bad-record` event.
 */
export function parseRegistrationRecord(
  value: string,
): { address: string; weight: number; metadata: Record<string, string> } | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return "not JSON";
  }
  if (typeof parsed !== "object" || parsed === null) {
    return "not a JSON object";
  }
  const { Addr, Metadata } = parsed as { Addr?: unknown; Metadata?: unknown };
  if (typeof Addr !== "string") {
    return "no Addr string";
  }
  const m = /^(?:\[[0-9A-Fa-f:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(Addr);
  if (m === null) {
    return `Addr ${JSON.stringify(Addr)} is not host:port`;
  }
  const port = Number(m[1]);
  if (port < 1 || port > 65535) {
    return `Addr ${JSON.stringify(Addr)}: port ${port} is not in 1..65535`;
  }
  const metadata: Record<string, string> = {};
  if (Metadata !== undefined && Metadata !== null) {
    if (typeof Metadata !== "object") {
      return "Metadata is not an object";
    }
    for (const [k, v] of Object.entries(Metadata as Record<string, unknown>)) {
      metadata[k] = typeof v === "string" ? v : JSON.stringify(v);
    }
  }
  let weight = 1;
  if (metadata.weight !== undefined) {
    weight = Number(metadata.weight);
    if (!Number.isInteger(weight) || weight < 1 || weight > 65535) {
      return `weight ${JSON.stringify(metadata.weight)} is not an integer in 1..65535`;
    }
  }
  return { address: Addr, weight, metadata };
}

/** formatRegistrationRecord renders the stored record value of a registration. */
export function formatRegistrationRecord(r: Registration): string {
  return JSON.stringify({ Addr: r.address, Metadata: r.metadata });
}
