// The agent's per-packet fast path: which flow a frame belongs to, as a number, read straight
// from its bytes without making a string or an object (the full flowKey runs once per new flow).
// Two 32-bit multiplicative hashes over the flow's fields make a 53-bit id: two flows sharing one
// would take about 10^15 flows to meet, far past the flow table's bound.
export interface FastFields {
  /** The flow id, before the observation point is mixed in. */
  hash: number;
  family: 4 | 6;
  ipLen: number;
  tcpFlags: number;
  /** ICMP echo sequence, or -1. */
  icmpSeq: number;
  /** Neighbour discovery, MLD, IGMP, link-local multicast: never a flow. */
  chatter: boolean;
  /** TCP bulk as the sampling filter tells it (IPv4, 20-byte headers, no SYN/FIN/RST): it stands for `oneIn` packets when sampled. */
  bulk: boolean;
}

const out: FastFields = { hash: 0, family: 4, ipLen: 0, tcpFlags: 0, icmpSeq: -1, chatter: false, bulk: false };
let plainHeader = false;
let h1 = 0, h2 = 0;
const mix = (x: number) => {
  h1 = Math.imul(h1 ^ x, 0x01000193) >>> 0;
  h2 = Math.imul(h2 ^ x, 0x5bd1e995) >>> 0;
  h2 ^= h2 >>> 15;
};
const word = (b: Uint8Array, at: number) => ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;

/** The frame's flow fields (the result object is reused: read it before the next call); undefined when not IP. */
export function fastFields(b: Uint8Array, vxlanPorts: ReadonlySet<number>): FastFields | undefined {
  h1 = 0x811c9dc5;
  h2 = 0x9747b28c;
  return fields(b, 0, vxlanPorts, 0);
}

function fields(b: Uint8Array, base: number, vxlanPorts: ReadonlySet<number>, depth: number): FastFields | undefined {
  if (b.length < base + 14) return undefined;
  let type = (b[base + 12]! << 8) | b[base + 13]!;
  let off = base + 14;
  if (type === 0x8100 && b.length >= base + 18) { type = (b[base + 16]! << 8) | b[base + 17]!; off = base + 18; }
  let proto: number, l4: number;
  out.tcpFlags = 0;
  out.icmpSeq = -1;
  out.chatter = false;
  out.bulk = false;
  if (type === 0x0800) {
    if (b.length < off + 20) return undefined;
    out.family = 4;
    // The filter reads fixed offsets: only a 20-byte header (and an outer one of 20) qualifies.
    const plain = b[off] === 0x45 && off === base + 14 && (depth === 0 || plainHeader);
    if (depth === 0) plainHeader = plain;
    else plainHeader = plainHeader && plain;
    proto = b[off + 9]!;
    out.ipLen = (b[off + 2]! << 8) | b[off + 3]!;
    const dst = word(b, off + 16);
    mix(4); mix(proto); mix(word(b, off + 12)); mix(dst);
    out.chatter = proto === 2 || (dst >>> 8) === 0xe00000; // IGMP, 224.0.0.0/24
    l4 = ((b[off + 6]! & 0x1f) | b[off + 7]!) === 0 ? off + (b[off]! & 15) * 4 : -1;
  } else if (type === 0x86dd) {
    if (b.length < off + 40) return undefined;
    out.family = 6;
    plainHeader = false;
    proto = b[off + 6]!;
    out.ipLen = 40 + ((b[off + 4]! << 8) | b[off + 5]!);
    mix(6); mix(proto);
    for (let i = 8; i < 40; i += 4) mix(word(b, off + i));
    out.chatter = proto === 0 || b[off + 24] === 0xff || (b[off + 8] === 0xfe && (b[off + 9]! & 0xc0) === 0x80);
    l4 = off + 40;
  } else {
    return undefined;
  }
  if (l4 < 0 || b.length < l4 + 4) return done();
  if (proto === 6 || proto === 17) {
    const sport = (b[l4]! << 8) | b[l4 + 1]!, dport = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    if (proto === 17 && depth === 0 && vxlanPorts.has(dport) && b.length >= l4 + 30 && (b[l4 + 8]! & 0x08) !== 0) {
      // VXLAN: the flow is the inner packet's (start the hash again, for the inner fields only).
      h1 = 0x811c9dc5;
      h2 = 0x9747b28c;
      const inner = fields(b, l4 + 16, vxlanPorts, 1);
      if (inner) return inner;
      h1 = 0x811c9dc5;
      h2 = 0x9747b28c;
      return undefined;
    }
    mix((sport << 16) | dport);
    if (proto === 6 && b.length >= l4 + 14) {
      out.tcpFlags = b[l4 + 13]!;
      out.bulk = out.family === 4 && plainHeader && (out.tcpFlags & 0x07) === 0;
    }
  } else if (proto === 1 || proto === 58) {
    const t = b[l4]!;
    if (proto === 58 && t >= 130 && t <= 143) out.chatter = true;
    const echo = proto === 1 ? t === 8 || t === 0 : t === 128 || t === 129;
    const id = echo && b.length >= l4 + 8 ? (b[l4 + 4]! << 8) | b[l4 + 5]! : 0;
    if (echo && b.length >= l4 + 8) out.icmpSeq = (b[l4 + 6]! << 8) | b[l4 + 7]!;
    mix((t << 16) | id);
  }
  return done();
}

function done(): FastFields {
  out.hash = h1 * 0x200000 + (h2 & 0x1fffff);
  return out;
}

/** The id of a flow at one observation point (interface and direction). */
export function pointHash(hash: number, ifindex: number, egress: boolean): number {
  // Stays below 2^53: the flow hash's high part is mixed with the point, its low part kept.
  const hi = Math.floor(hash / 0x200000);
  const mixed = Math.imul(hi ^ ((ifindex << 1) | (egress ? 1 : 0)), 0x01000193) >>> 0;
  return mixed * 0x200000 + (hash % 0x200000);
}
