import { BlockList, isIPv4, isIPv6 } from "node:net";

/**
 * Who a request counts against for limits: `key:<name>` for a publisher key,
 * `sub:<subject>` for a token holder, else `ip:<address>` with IPv6 grouped by
 * /64 (one host usually owns a whole /64, so per-address limits would be free
 * to dodge).
 */
export type VisitorId = string;

/** Addresses whose X-Forwarded-For is believed: exact IPs or CIDR ranges. */
export interface TrustedProxies {
  has(address: string): boolean;
}

/** Hops of X-Forwarded-For walked at most; a longer header is someone padding it. */
const MAX_FORWARDED_HOPS = 16;

const MAPPED_IPV4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

function unmap(address: string): string {
  return MAPPED_IPV4.exec(address)?.[1] ?? address;
}

export function createTrustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", bits] = entry.split("/");
    const type = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
    if (type === undefined) throw new Error(`"${entry}" is not an IP address or CIDR range`);
    if (bits === undefined) list.addAddress(address, type);
    else {
      const prefix = Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (type === "ipv4" ? 32 : 128)) {
        throw new Error(`"${entry}" has an invalid prefix length`);
      }
      list.addSubnet(address, prefix, type);
    }
  }
  return {
    has(address) {
      const plain = unmap(address);
      if (isIPv4(plain)) return list.check(plain, "ipv4");
      return isIPv6(plain) && list.check(plain, "ipv6");
    },
  };
}

/** Expands an IPv6 address to its eight groups. */
function ipv6Groups(address: string): string[] {
  const [head = "", tail] = address.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const last = right.length > 0 ? right : left;
  if ((last.at(-1) ?? "").includes(".")) {
    // An embedded IPv4 tail fills the last two groups.
    const octets = (last.pop() as string).split(".").map(Number);
    last.push(
      ((octets[0] ?? 0) * 256 + (octets[1] ?? 0)).toString(16),
      ((octets[2] ?? 0) * 256 + (octets[3] ?? 0)).toString(16),
    );
  }
  const fill = tail === undefined ? [] : new Array(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].map((group) => Number.parseInt(group, 16).toString(16));
}

/** The visitor key of a client address: the address for IPv4, its /64 for IPv6. */
export function addressVisitor(address: string): VisitorId {
  const plain = unmap(address);
  if (isIPv6(plain)) return `ip:${ipv6Groups(plain).slice(0, 4).join(":")}::/64`;
  return `ip:${plain}`;
}

/** Longest unparseable hop kept as a client's identity; it only has to tell clients apart. */
const MAX_ODD_HOP_LENGTH = 64;

/** A hop as proxies write it: an address, maybe with a port (`1.2.3.4:80`, `[::1]:80`). */
function hopAddress(hop: string): string | undefined {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  const candidate = bracketed ? (bracketed[1] as string) : (/^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(hop)?.[1] ?? hop);
  return isIPv4(unmap(candidate)) || isIPv6(candidate) ? candidate : undefined;
}

/**
 * The client's address: the socket peer, or, when that peer is a trusted proxy,
 * the nearest X-Forwarded-For hop that is not itself a trusted proxy. A hop
 * that is not an address is still where the request came from as far as any
 * trusted proxy knows: it becomes the (untrusted) client's identity, rather
 * than letting every such client count as the proxy.
 */
export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | undefined,
  trusted: TrustedProxies,
): string {
  let address = peer ?? "unknown";
  if (forwardedFor === undefined || !trusted.has(address)) return address;
  const hops = forwardedFor.split(",").slice(-MAX_FORWARDED_HOPS).reverse();
  for (const hop of hops) {
    const trimmed = hop.trim();
    const candidate = hopAddress(trimmed);
    if (candidate === undefined) return `unparsed:${trimmed.slice(0, MAX_ODD_HOP_LENGTH)}`;
    address = candidate;
    if (!trusted.has(candidate)) break;
  }
  return address;
}
