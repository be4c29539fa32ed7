// Addresses and ipBlocks as the evaluator tests them millions of times: parsed once, IPv4 as a
// plain 32-bit number (no bigint on the common path), IPv6 on cidr.ts's bigints.
import { formatIP, maskOf, parseIP, type Prefix } from "../net/cidr.ts";
import type { IpBlock } from "./types.ts";

export interface Addr {
  family: 4 | 6;
  /** Normalised text (RFC 5952 for IPv6), the form maps are keyed by. */
  text: string;
  /** The IPv4 address as an unsigned 32-bit number; 0 for IPv6. */
  v4: number;
  value: bigint;
}

export function toAddr(text: string): Addr | undefined {
  const ip = parseIP(text);
  if (!ip) return undefined;
  return { family: ip.family, text: formatIP(ip), v4: ip.family === 4 ? Number(ip.value) : 0, value: ip.value };
}

export interface PrefixTest {
  family: 4 | 6;
  bits: number;
  net4: number;
  mask4: number;
  net: bigint;
  mask: bigint;
}

export function prefixTest(p: Prefix): PrefixTest {
  const mask4 = p.ip.family === 4 ? (p.bits === 0 ? 0 : (0xffffffff << (32 - p.bits)) >>> 0) : 0;
  return { family: p.ip.family, bits: p.bits, net4: p.ip.family === 4 ? Number(p.ip.value) : 0, mask4, net: p.ip.value, mask: maskOf(p.ip.family, p.bits) };
}

export function inPrefix(t: PrefixTest, a: Addr): boolean {
  if (t.family !== a.family) return false;
  if (a.family === 4) return ((a.v4 & t.mask4) >>> 0) === t.net4;
  return (a.value & t.mask) === t.net;
}

export interface BlockTest {
  cidr: PrefixTest;
  except: PrefixTest[];
}

export function blockTest(b: IpBlock): BlockTest {
  return { cidr: prefixTest(b.prefix), except: b.except.map((e) => prefixTest(e.prefix)) };
}

/** In the block's CIDR and in none of its excepts. */
export function inBlock(t: BlockTest, a: Addr): boolean {
  if (!inPrefix(t.cidr, a)) return false;
  for (const e of t.except) if (inPrefix(e, a)) return false;
  return true;
}
