// Transport layers: ICMP, ICMPv6, UDP (and from it the tunnels), TCP with flags and options.
// TCP/UDP checksum fields and pseudo-header sums are recorded here and verified after the
// whole packet is decoded (checksums.ts), so nested segments are summed once.
import { type DecodeContext, sum16 } from "./context.ts";
import type { ChecksumState } from "./layers.ts";
import { decodeGeneve, decodeVxlan, decodeWireguard } from "./tunnel.ts";

export function decodeTransport(ctx: DecodeContext, proto: number, off: number, end: number, depth: number, ipOff: number, ipv: 4 | 6): void {
  switch (proto) {
    case 1: case 58: {
      const kind = proto === 1 ? "icmp" : "icmp6";
      if (!ctx.has(kind, off, 4, end)) return;
      const type = ctx.u8(off);
      const echo = proto === 1 ? type === 0 || type === 8 : type === 128 || type === 129;
      if (echo && off + 8 <= end) {
        ctx.layers.push({ kind, depth, offset: off, headerLen: 8, type, code: ctx.u8(off + 1), id: ctx.u16(off + 4), seq: ctx.u16(off + 6) });
      } else {
        ctx.layers.push({ kind, depth, offset: off, headerLen: Math.min(8, end - off), type, code: ctx.u8(off + 1) });
      }
      return;
    }
    case 17: return decodeUdp(ctx, off, end, depth, ipOff, ipv);
    case 6: return decodeTcp(ctx, off, end, depth, ipOff, ipv);
    default: return;
  }
}

function pseudoHeaderSum(ctx: DecodeContext, ipOff: number, ipv: 4 | 6, proto: number, len: number): number {
  if (ipv === 4) return sum16(ctx.frame, ipOff + 12, ipOff + 20) + proto + len;
  return sum16(ctx.frame, ipOff + 8, ipOff + 40) + proto + Math.floor(len / 65536) + (len & 0xffff);
}

/** Checksums are verified after decoding, in one pass for all nested segments (checksums.ts). */
function initialState(ctx: DecodeContext, end: number): ChecksumState {
  return !ctx.opts.detail || end > ctx.frame.length || ctx.frame.length < ctx.d.wireLen ? "unchecked" : "bad";
}

function decodeUdp(ctx: DecodeContext, off: number, end: number, depth: number, ipOff: number, ipv: 4 | 6): void {
  if (!ctx.has("udp", off, 8, end)) return;
  const length = ctx.u16(off + 4);
  if (length < 8) return ctx.malformed("udp", off, `length ${length} is below 8`);
  let udpEnd = off + length;
  if (udpEnd > end) {
    const cut = ctx.frame.length < ctx.d.wireLen && end >= ctx.frame.length;
    if (!cut) return ctx.malformed("udp", off, `length ${length} is more than the ${end - off} bytes present`);
    udpEnd = end;
  }
  const srcPort = ctx.u16(off);
  const dstPort = ctx.u16(off + 2);
  const checksum = ctx.u16(off + 6);
  const state: ChecksumState = checksum === 0 && ipv === 4 ? "none" : initialState(ctx, off + length);
  const pseudo = state === "bad" ? pseudoHeaderSum(ctx, ipOff, ipv, 17, length) : 0;
  ctx.layers.push({ kind: "udp", depth, offset: off, headerLen: 8, srcPort, dstPort, length, checksum, checksumState: state, segEnd: off + length, pseudo });
  const { vxlanPorts, genevePorts, wireguardPorts } = ctx.opts;
  if (vxlanPorts.has(dstPort) || vxlanPorts.has(srcPort)) return decodeVxlan(ctx, off + 8, udpEnd, depth);
  if (genevePorts.has(dstPort) || genevePorts.has(srcPort)) return decodeGeneve(ctx, off + 8, udpEnd, depth);
  if (wireguardPorts.has(dstPort) || wireguardPorts.has(srcPort)) return decodeWireguard(ctx, off + 8, udpEnd, depth);
}

function decodeTcp(ctx: DecodeContext, off: number, end: number, depth: number, ipOff: number, ipv: 4 | 6): void {
  if (!ctx.has("tcp", off, 20, end)) return;
  const dataOff = (ctx.u8(off + 12) >> 4) * 4;
  if (dataOff < 20) return ctx.malformed("tcp", off, `data offset ${dataOff} is below 20`);
  if (!ctx.has("tcp", off, dataOff, end)) return;
  const checksum = ctx.u16(off + 16);
  const state = initialState(ctx, end);
  if (ctx.opts.detail && dataOff > 20) {
    const bad = walkTcpOptions(ctx.frame, off + 20, off + dataOff, () => undefined);
    if (bad) return ctx.malformed("tcp", off + 20, bad);
  }
  ctx.layers.push({
    kind: "tcp", depth, offset: off, headerLen: dataOff, srcPort: ctx.u16(off), dstPort: ctx.u16(off + 2),
    seq: ctx.u32(off + 4), ack: ctx.u32(off + 8), flags: ctx.u16(off + 12) & 0x1ff, window: ctx.u16(off + 14),
    payloadLen: end - off - dataOff, checksum, checksumState: state, segEnd: end, pseudo: state === "bad" ? pseudoHeaderSum(ctx, ipOff, ipv, 6, end - off) : 0,
  });
}

/**
 * Walks TCP options in [p, end), calling `visit` for each (EOL ends the list, NOP has len 1).
 * Returns why the list is malformed, or undefined.
 */
export function walkTcpOptions(f: Uint8Array, p: number, end: number, visit: (kind: number, at: number, len: number) => void): string | undefined {
  while (p < end) {
    const kind = f[p]!;
    if (kind === 0) break;
    if (kind === 1) { visit(1, p, 1); p++; continue; }
    if (p + 2 > end) return `option ${kind} has no length byte`;
    const len = f[p + 1]!;
    if (len < 2 || p + len > end) return `option ${kind} claims length ${len}`;
    visit(kind, p, len);
    p += len;
  }
  return undefined;
}
