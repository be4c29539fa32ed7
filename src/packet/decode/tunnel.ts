// Tunnels: VXLAN (RFC 7348, with the group-policy extension's G bit and policy ID) and Geneve
// (RFC 8926, with its option TLVs). The inner frame is decoded with the same decoders one
// depth down, up to MAX_TUNNEL_DEPTH (garbage inside a tunnel is reported, never followed forever).
import { type DecodeContext, MAX_TUNNEL_DEPTH } from "./context.ts";
import type { VxlanLayer, WireguardLayer } from "./layers.ts";

/** WireGuard's message sizes: handshake initiation, response and cookie reply are fixed. */
const WG_FIXED: Record<number, number> = { 1: 148, 2: 92, 3: 64 };

/** WireGuard (its whitepaper's message formats): the header only; the payload is encrypted. */
export function decodeWireguard(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("wireguard", off, 4, end)) return;
  const msgType = ctx.u8(off);
  if (msgType < 1 || msgType > 4 || ctx.u8(off + 1) !== 0 || ctx.u16(off + 2) !== 0) return ctx.malformed("wireguard", off, `message type ${msgType} with reserved bytes ${ctx.u8(off + 1)}/${ctx.u16(off + 2)}: not WireGuard`);
  if (msgType !== 4) {
    const want = WG_FIXED[msgType]!;
    if (end - off !== want) return ctx.malformed("wireguard", off, `a type ${msgType} message is ${want} bytes, not ${end - off}`);
    ctx.layers.push({ kind: "wireguard", depth, offset: off, headerLen: want, msgType, ...(msgType > 1 ? { receiver: ctx.u32le(off + 8) } : {}) });
    return;
  }
  if (!ctx.has("wireguard", off, 32, end)) return;
  // Transport data: header 16, then the sealed packet (a multiple of 16, 0 for a keepalive) and its 16-byte tag.
  const sealedLen = end - off - 32;
  const counter = (BigInt(ctx.u32le(off + 12)) << 32n | BigInt(ctx.u32le(off + 8))).toString();
  const layer: WireguardLayer = { kind: "wireguard", depth, offset: off, headerLen: 16, msgType, receiver: ctx.u32le(off + 4), counter, sealedLen };
  ctx.layers.push(layer);
  if (sealedLen % 16 !== 0) return ctx.malformed("wireguard", off, `sealed payload of ${sealedLen} bytes is not a multiple of 16`);
}

export function decodeVxlan(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("vxlan", off, 8, end)) return;
  const flags = ctx.u8(off);
  const layer: VxlanLayer = { kind: "vxlan", depth, offset: off, headerLen: 8, flags, vni: Math.floor(ctx.u32(off + 4) / 256) };
  if (flags & 0x80) layer.groupPolicy = ctx.u16(off + 2);
  ctx.layers.push(layer);
  if ((flags & 0x08) === 0) return ctx.malformed("vxlan", off, `flags 0x${flags.toString(16).padStart(2, "0")} lack the I bit (valid VNI)`);
  if (depth + 1 > MAX_TUNNEL_DEPTH) return;
  ctx.inner.ethernet(ctx, off + 8, end, depth + 1);
}

export function decodeGeneve(ctx: DecodeContext, off: number, end: number, depth: number): void {
  if (!ctx.has("geneve", off, 8, end)) return;
  const b0 = ctx.u8(off);
  const version = b0 >> 6;
  if (version !== 0) return ctx.malformed("geneve", off, `version ${version} is not 0`);
  const optionsLen = (b0 & 0x3f) * 4;
  if (!ctx.has("geneve", off, 8 + optionsLen, end)) return;
  const options: { cls: number; type: number; len: number }[] = [];
  for (let p = off + 8; p < off + 8 + optionsLen;) {
    if (p + 4 > off + 8 + optionsLen) return ctx.malformed("geneve", p, "option header runs past the options");
    const len = (ctx.u8(p + 3) & 0x1f) * 4;
    options.push({ cls: ctx.u16(p), type: ctx.u8(p + 2), len });
    p += 4 + len;
    if (p > off + 8 + optionsLen) return ctx.malformed("geneve", p, "option data runs past the options");
  }
  const protocol = ctx.u16(off + 2);
  const b1 = ctx.u8(off + 1);
  ctx.layers.push({
    kind: "geneve", depth, offset: off, headerLen: 8 + optionsLen, vni: Math.floor(ctx.u32(off + 4) / 256), protocol, optionsLen, options,
    oam: (b1 & 0x80) !== 0, critical: (b1 & 0x40) !== 0,
  });
  if (depth + 1 > MAX_TUNNEL_DEPTH) return;
  const inner = off + 8 + optionsLen;
  if (protocol === 0x6558) return ctx.inner.ethernet(ctx, inner, end, depth + 1);
  ctx.inner.etherType(ctx, protocol, inner, end, depth + 1);
}
