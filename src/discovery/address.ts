/** HostPort is a parsed `host:port`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/**
 * formatAddress renders `host:port`, bracketing IPv6 hosts (`[::1]:5000`).
 */
export function formatAddress(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * parseAddress reads `host:port` or `[ipv6]:port`. It throws a TypeError naming
 * the bad value when the port is missing, not a number, 0, or above 65535.
 */
export function parseAddress(value: string): HostPort {
  const m = /^(?:\[([0-9A-Fa-f:.%a-zA-Z0-9]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value);
  if (m === null) {
    throw new TypeError(`address ${JSON.stringify(value)} is not host:port (IPv6 in brackets)`);
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) {
    throw new TypeError(`address ${JSON.stringify(value)}: port ${port} is not in 1..65535`);
  }
  return { host: (m[1] ?? m[2]) as string, port };
}
