import { isIPv4, isIPv6 } from "node:net";

/**
 * ipBytes returns an IP address's bytes in network order (4 for IPv4, 16 for
 * IPv6, zone ids dropped), as channelz's TcpIpAddress wants them, or
 * undefined when `host` is not an IP address (a host name).
 */
export function ipBytes(host: string): Uint8Array | undefined {
  if (isIPv4(host)) return Uint8Array.from(host.split(".").map(Number));
  const bare = host.split("%")[0] ?? host;
  if (!isIPv6(bare)) return undefined;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  let text = bare;
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail !== null) {
    const [a, b, c, d] = (tail[1] as string).split(".").map(Number) as [
      number,
      number,
      number,
      number,
    ];
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups =
    rest === undefined
      ? left
      : [...left, ...new Array<string>(8 - left.length - right.length).fill("0"), ...right];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}
