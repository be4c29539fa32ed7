// IP address and prefix arithmetic for IPv4 and IPv6 on bigints. Pure: no I/O.
// Formatting follows RFC 5952 (what Go's net.IP.String prints), because the reference
// host-local plugin names its reservation files that way and we share its directory.

export type Family = 4 | 6;

export interface IP {
  family: Family;
  value: bigint;
}

export interface Prefix {
  /** The network address (host bits cleared). */
  ip: IP;
  bits: number;
}

const V4_BITS = 32;
const V6_BITS = 128;

export function familyBits(f: Family): number {
  return f === 4 ? V4_BITS : V6_BITS;
}

export function parseIP(text: string): IP | undefined {
  if (typeof text !== "string") return undefined;
  if (text.includes(":")) return parseV6(text);
  return parseV4(text);
}

function parseV4(text: string): IP | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return { family: 4, value: v };
}

function parseV6(text: string): IP | undefined {
  let head = text;
  let tailV4: IP | undefined;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    tailV4 = parseV4(text.slice(lastColon + 1));
    if (!tailV4) return undefined;
    head = text.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = head.split("::");
  if (dbl.length > 2) return undefined;
  const left = dbl[0] ? dbl[0].split(":") : [];
  const right = dbl.length === 2 && dbl[1] ? dbl[1].split(":") : [];
  const groupsGiven = left.length + right.length;
  if (dbl.length === 1 && groupsGiven !== 8) return undefined;
  if (dbl.length === 2 && groupsGiven > 7) return undefined;
  const groups = [...left, ...Array<string>(8 - groupsGiven).fill("0"), ...right];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tailV4) v = (v & ~0xffffffffn) | tailV4.value;
  return { family: 6, value: v };
}

export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

export function ipEqual(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

export function compareIP(a: IP, b: IP): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function maskOf(family: Family, bits: number): bigint {
  const total = familyBits(family);
  return ((1n << BigInt(total)) - 1n) ^ ((1n << BigInt(total - bits)) - 1n);
}

/** Parses "a.b.c.d/n"; `host` keeps the address as written (e.g. a gateway 10.0.0.1/24). */
export function parseCIDR(text: string): { host: IP; prefix: Prefix } | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const host = parseIP(text.slice(0, slash));
  const bitsText = text.slice(slash + 1);
  if (!host || !/^\d{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  if (bits > familyBits(host.family)) return undefined;
  return { host, prefix: { ip: { family: host.family, value: host.value & maskOf(host.family, bits) }, bits } };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIP(p.ip)}/${p.bits}`;
}

export function prefixContains(p: Prefix, ip: IP): boolean {
  return p.ip.family === ip.family && (ip.value & maskOf(ip.family, p.bits)) === p.ip.value;
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.ip.family !== b.ip.family) return false;
  const bits = Math.min(a.bits, b.bits);
  const m = maskOf(a.ip.family, bits);
  return (a.ip.value & m) === (b.ip.value & m);
}

/** Last address of the prefix (the IPv4 broadcast address). */
export function prefixLast(p: Prefix): IP {
  const hostMask = (1n << BigInt(familyBits(p.ip.family) - p.bits)) - 1n;
  return { family: p.ip.family, value: p.ip.value | hostMask };
}

export function nextIP(ip: IP): IP {
  const max = (1n << BigInt(familyBits(ip.family))) - 1n;
  return { family: ip.family, value: ip.value === max ? 0n : ip.value + 1n };
}

export function prevIP(ip: IP): IP {
  const max = (1n << BigInt(familyBits(ip.family))) - 1n;
  return { family: ip.family, value: ip.value === 0n ? max : ip.value - 1n };
}

export function addToIP(ip: IP, n: bigint): IP {
  const mod = 1n << BigInt(familyBits(ip.family));
  return { family: ip.family, value: (((ip.value + n) % mod) + mod) % mod };
}

/** The address in network byte order (4 or 16 bytes), as netlink and packets carry it. */
export function ipToBytes(ip: IP): Uint8Array {
  const n = ip.family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** An address from 4 or 16 bytes in network order; undefined for any other length. */
export function ipFromBytes(b: Uint8Array): IP | undefined {
  if (b.length !== 4 && b.length !== 16) return undefined;
  let v = 0n;
  for (let i = 0; i < b.length; i++) v = (v << 8n) | BigInt(b[i]!);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

/** Text of an address given as bytes (the IPv4 path, the common one, without bigints). */
export function formatIPBytes(b: Uint8Array): string | undefined {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const ip = ipFromBytes(b);
  return ip ? formatIP(ip) : undefined;
}

/**
 * A membership test for one prefix, made once and called many times: for IPv4 with plain 32-bit
 * numbers instead of bigints (the agent asks it for each of a thousand peers on every pass).
 */
export function prefixMatcher(p: Prefix): (text: string) => boolean {
  if (p.ip.family === 4 && p.bits <= 32) {
    const net = Number(p.ip.value) >>> 0;
    const mask = p.bits === 0 ? 0 : (0xffffffff << (32 - p.bits)) >>> 0;
    return (text) => {
      const v = ipv4Number(text);
      return v !== undefined && ((v & mask) >>> 0) === net;
    };
  }
  return (text) => {
    const ip = parseIP(text);
    return !!ip && prefixContains(p, ip);
  };
}

/** "10.244.1.0" as a 32-bit number; undefined when it is not a dotted quad. */
export function ipv4Number(text: string): number | undefined {
  let v = 0, part = 0, digits = 0, dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++dots > 3) return undefined;
      v = v * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return v * 256 + part;
}

/**
 * An address as bytes in network order, with its family, straight from text: the IPv4 path
 * without bigints (request builders run it for each of thousands of entries at scale).
 */
export function ipBytes(text: string): { family: Family; bytes: Uint8Array } | undefined {
  const v = ipv4Number(text);
  if (v !== undefined) return { family: 4, bytes: new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]) };
  const ip = text.includes(":") ? parseIP(text) : undefined;
  return ip ? { family: ip.family, bytes: ipToBytes(ip) } : undefined;
}

/** "10.244.2.0/24" as the network's bytes (host bits cleared) and the length; undefined when not a prefix. */
export function prefixBytes(text: string): { family: Family; bytes: Uint8Array; bits: number } | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const bitsText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  const v = ipv4Number(text.slice(0, slash));
  if (v !== undefined) {
    if (bits > 32) return undefined;
    const n = bits === 0 ? 0 : (v & ((0xffffffff << (32 - bits)) >>> 0)) >>> 0;
    return { family: 4, bytes: new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]), bits };
  }
  const c = parseCIDR(text);
  return c ? { family: c.prefix.ip.family, bytes: ipToBytes(c.prefix.ip), bits } : undefined;
}
