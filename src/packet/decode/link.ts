// Link layers: Ethernet with 802.1Q/802.1ad tags, Linux cooked captures (SLL, SLL2), raw IP.
import type { DecodeContext } from "./context.ts";
import { decodeEtherType } from "./network.ts";

export const LINKTYPE = { ETHERNET: 1, RAW: 101, DLT_RAW_12: 12, DLT_RAW_14: 14, SLL: 113, SLL2: 276, IPV4: 228, IPV6: 229 } as const;

export function decodeLink(ctx: DecodeContext, linkType: number): void {
  const end = ctx.frame.length;
  switch (linkType) {
    case LINKTYPE.ETHERNET: return decodeEthernet(ctx, 0, end, 0);
    case LINKTYPE.SLL: return decodeSll(ctx, end);
    case LINKTYPE.SLL2: return decodeSll2(ctx, end);
    case LINKTYPE.RAW: case LINKTYPE.DLT_RAW_12: case LINKTYPE.DLT_RAW_14: {
      if (!ctx.has("raw ip", 0, 1, end)) return;
      const v = ctx.u8(0) >> 4;
      if (v === 4) return decodeEtherType(ctx, 0x0800, 0, end, 0);
      if (v === 6) return decodeEtherType(ctx, 0x86dd, 0, end, 0);
      return ctx.malformed("raw ip", 0, `IP version ${v} is neither 4 nor 6`);
    }
    case LINKTYPE.IPV4: return decodeEtherType(ctx, 0x0800, 0, end, 0);
    case LINKTYPE.IPV6: return decodeEtherType(ctx, 0x86dd, 0, end, 0);
    default:
      ctx.malformed("link", 0, `link type ${linkType} is not one gauze decodes (Ethernet, Linux cooked SLL/SLL2, raw IP)`);
  }
}

export function decodeEthernet(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("eth", off, 14, end)) return;
  let p = off + 12;
  let etherType = ctx.u16(p);
  const vlans: number[] = [];
  while ((etherType === 0x8100 || etherType === 0x88a8) && vlans.length < 4) {
    if (!ctx.has("vlan", p, 6, end)) return;
    vlans.push(ctx.u16(p + 2) & 0x0fff);
    p += 4;
    etherType = ctx.u16(p);
  }
  const headerLen = p + 2 - off;
  ctx.layers.push({ kind: "eth", depth, offset: off, headerLen, etherType, vlans });
  decodeEtherType(ctx, etherType, off + headerLen, end, depth);
}

function decodeSll(ctx: DecodeContext, end: number): void {
  if (!ctx.has("sll", 0, 16, end)) return;
  const etherType = ctx.u16(14);
  ctx.layers.push({ kind: "sll", depth: 0, offset: 0, headerLen: 16, etherType, pktType: ctx.u16(0), ifindex: 0 });
  decodeEtherType(ctx, etherType, 16, end, 0);
}

function decodeSll2(ctx: DecodeContext, end: number): void {
  if (!ctx.has("sll2", 0, 20, end)) return;
  const etherType = ctx.u16(0);
  ctx.layers.push({ kind: "sll2", depth: 0, offset: 0, headerLen: 20, etherType, pktType: ctx.u8(10), ifindex: ctx.u32(4) });
  decodeEtherType(ctx, etherType, 20, end, 0);
}
