// Network layers: ARP, IPv4 (options, fragments, header checksum), IPv6 (extension headers).
// The end of an IP packet is its own length field: Ethernet padding after it is ignored, and a
// length field that claims more than the frame holds is malformed (or cut, if the snaplen cut it).
import { type DecodeContext, fold, sum16 } from "./context.ts";
import { decodeTransport } from "./transport.ts";

export function decodeEtherType(ctx: DecodeContext, etherType: number, off: number, end: number, depth: number): void {
  switch (etherType) {
    case 0x0800: return decodeIpv4(ctx, off, end, depth);
    case 0x86dd: return decodeIpv6(ctx, off, end, depth);
    case 0x0806: return decodeArp(ctx, off, end, depth);
    default: return; // other protocols: their bytes are payload
  }
}

function decodeArp(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("arp", off, 8, end)) return;
  const hlen = ctx.u8(off + 4);
  const plen = ctx.u8(off + 5);
  const len = 8 + 2 * hlen + 2 * plen;
  if (!ctx.has("arp", off, len, end)) return;
  const ipv4 = ctx.u16(off + 2) === 0x0800 && plen === 4 && hlen === 6;
  ctx.layers.push({
    kind: "arp", depth, offset: off, headerLen: len, op: ctx.u16(off + 6),
    senderIp: ipv4 ? ctx.u32(off + 14) : 0, targetIp: ipv4 ? ctx.u32(off + 24) : 0, senderMacAt: off + 8,
  });
}

function decodeIpv4(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("ipv4", off, 20, end)) return;
  const vihl = ctx.u8(off);
  if (vihl >> 4 !== 4) return ctx.malformed("ipv4", off, `version field is ${vihl >> 4}, not 4`);
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) return ctx.malformed("ipv4", off, `header length ${ihl} is below 20`);
  let totalLen = ctx.u16(off + 2);
  // BIG TCP: a GSO packet over 64 KiB cannot say its length in 16 bits and says 0; as tcpdump
  // does, the length is presumed from the capture (what the wire length leaves after this header's offset).
  const presumed = totalLen === 0 && ctx.d.wireLen - off > ihl;
  if (presumed) totalLen = ctx.d.wireLen - off;
  if (totalLen < ihl) return ctx.malformed("ipv4", off, `total length ${totalLen} is shorter than its header (${ihl})`);
  if (!ctx.has("ipv4", off, ihl, end)) return;
  let ipEnd = off + totalLen;
  if (ipEnd > end) {
    const cutBySnaplen = ctx.frame.length < ctx.d.wireLen && end >= ctx.frame.length;
    if (!cutBySnaplen) return ctx.malformed("ipv4", off, `total length ${totalLen} is more than the ${end - off} bytes present`);
    ipEnd = end;
  }
  const fragField = ctx.u16(off + 6);
  const fragOffset = (fragField & 0x1fff) * 8;
  const proto = ctx.u8(off + 9);
  ctx.layers.push({
    kind: "ipv4", depth, offset: off, headerLen: ihl, src: ctx.u32(off + 12), dst: ctx.u32(off + 16), proto, totalLen,
    ttl: ctx.u8(off + 8), id: ctx.u16(off + 4), tos: ctx.u8(off + 1), flags: fragField >> 13, fragOffset,
    // The summary does not show it: skip the sum there (detail off).
    checksumOk: !ctx.opts.detail || fold(sum16(ctx.frame, off, off + ihl)) === 0xffff, optionsLen: ihl - 20, ...(presumed ? { presumedLength: true as const } : {}),
  });
  // A later fragment carries no transport header: its bytes are payload.
  if (fragOffset > 0) return;
  decodeTransport(ctx, proto, off + ihl, ipEnd, depth, off, 4);
}

const V6_EXT = new Set([0, 43, 44, 60, 51]);

function decodeIpv6(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("ipv6", off, 40, end)) return;
  const v = ctx.u8(off) >> 4;
  if (v !== 6) return ctx.malformed("ipv6", off, `version field is ${v}, not 6`);
  let payloadLen = ctx.u16(off + 4);
  // A jumbogram (RFC 2675; BIG TCP over IPv6) says 0 here: its hop-by-hop jumbo option holds the
  // length, or, where a tap stripped it, the length is presumed from the capture.
  let presumed = false;
  if (payloadLen === 0 && ctx.d.wireLen - off > 40) {
    presumed = true;
    payloadLen = jumboLength(ctx, off, end) ?? ctx.d.wireLen - off - 40;
  }
  let ipEnd = off + 40 + payloadLen;
  if (ipEnd > end) {
    const cutBySnaplen = ctx.frame.length < ctx.d.wireLen && end >= ctx.frame.length;
    if (!cutBySnaplen) return ctx.malformed("ipv6", off, `payload length ${payloadLen} is more than the ${end - off - 40} bytes present`);
    ipEnd = end;
  }
  let next = ctx.u8(off + 6);
  let p = off + 40;
  const extHeaders: number[] = [];
  let fragment: { offset: number; more: boolean; id: number } | undefined;
  while (V6_EXT.has(next) && extHeaders.length < 16) {
    if (!ctx.has("ipv6 extension", p, 8, ipEnd)) return;
    extHeaders.push(next);
    let len: number;
    if (next === 44) {
      const f = ctx.u16(p + 2);
      fragment = { offset: (f >> 3) * 8, more: (f & 1) === 1, id: ctx.u32(p + 4) };
      len = 8;
    } else if (next === 51) {
      len = (ctx.u8(p + 1) + 2) * 4; // AH counts 4-byte words minus 2
    } else {
      len = (ctx.u8(p + 1) + 1) * 8;
    }
    if (!ctx.has("ipv6 extension", p, len, ipEnd)) return;
    next = ctx.u8(p);
    p += len;
  }
  ctx.layers.push({
    kind: "ipv6", depth, offset: off, headerLen: p - off, srcAt: off + 8, dstAt: off + 24, proto: next, payloadLen,
    hopLimit: ctx.u8(off + 7), flowLabel: ctx.u32(off) & 0xfffff, extHeaders, ...(fragment ? { fragment } : {}), ...(presumed ? { presumedLength: true as const } : {}),
  });
  if (fragment && fragment.offset > 0) return;
  decodeTransport(ctx, next, p, ipEnd, depth, off, 6);
}

/** The payload length a hop-by-hop jumbo option (type 0xc2) gives, when the first extension header is one. */
function jumboLength(ctx: DecodeContext, off: number, end: number): number | undefined {
  if (ctx.u8(off + 6) !== 0 || off + 48 > end) return undefined;
  const hbhEnd = off + 40 + (ctx.u8(off + 41) + 1) * 8;
  for (let p = off + 42; p + 2 <= Math.min(hbhEnd, end);) {
    const type = ctx.u8(p);
    if (type === 0) { p++; continue; } // Pad1
    const len = ctx.u8(p + 1);
    if (type === 0xc2 && len === 4 && p + 6 <= end) return ctx.u32(p + 2);
    p += 2 + len;
  }
  return undefined;
}
