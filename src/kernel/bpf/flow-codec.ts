// The wire between observe.c and TypeScript: the flow key and state in the LRU, the config the
// program reads, and the ring buffer's flow events, each as a small codec over a DataView at the
// offsets clang lays the C structs out at (test/unit/bpf-codec.test.ts checks them against the
// object's DWARF). IPv4 addresses sit in the first 4 of 16 bytes, as the program stores them.
import { formatIPBytes, ipBytes } from "../../net/cidr.ts";
import type { Codec } from "./map.ts";

const REASONS = ["", "new", "flags", "end", "periodic", "trace"] as const;
export type FlowReason = "new" | "flags" | "end" | "periodic" | "trace";

export interface TraceMatch {
  src?: string;
  dst?: string;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6). */
  proto?: number;
  srcPort?: number;
  dstPort?: number;
  /** ICMP echo id (matched as the source port, as the program keys it). */
  icmpId?: number;
  /** Match the reply direction too (default true). */
  bothWays?: boolean;
}

export interface FlowTapConfig {
  /** UDP ports whose payload is VXLAN (up to 4): flows are keyed on the inner frame. */
  vxlanPorts: number[];
  /** A flow is reported again after this long without an event (if packets keep coming). */
  reportIntervalNs: number;
  /** Every packet matching this is reported. */
  trace?: TraceMatch;
}

export interface FlowTapEvent {
  ifindex: number;
  egress: boolean;
  /** CLOCK_REALTIME nanoseconds (converted from the program's monotonic clock when read). */
  timeNs: bigint;
  /** When the flow was first seen (same clock). */
  firstNs: bigint;
  /** 4, 6, or 0 for non-IP frames (ethertype says what). */
  family: 0 | 4 | 6;
  ethertype: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  proto: number;
  /** This packet's TCP flags, and all the flow has shown in this direction. */
  tcpFlags: number;
  flagsSeen: number;
  icmp?: { type: number; code: number; id: number; seq: number };
  /** Since the flow's previous event, this packet included. */
  packets: number;
  bytes: number;
  /** This packet's length at the hook (the inner frame's, for VXLAN). */
  len: number;
  tunnel?: { vni: number; outerSrc: string; outerDst: string; outerSrcPort: number; outerDstPort: number; outerLen: number };
  reason: FlowReason;
  /** It matched the trace match (reason says why else it was reported). */
  traced: boolean;
  /** The frame's first bytes (up to 192: GZ_FLOW_FRAME_MAX), from its Ethernet header. */
  frame: Uint8Array;
}

export interface FlowKey {
  ifindex: number;
  egress: boolean;
  family: number;
  proto: number;
  tunnel: boolean;
  src: Uint8Array;
  dst: Uint8Array;
  sport: number;
  dport: number;
}

export interface FlowState {
  firstNs: number;
  lastNs: number;
  lastReportNs: number;
  packets: number;
  bytes: number;
  reportedPackets: number;
  reportedBytes: number;
  flagsSeen: number;
}

const b16 = (v: DataView, o: number) => new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + 16));

/** struct flow_key (observe.c): 44 bytes. */
export const flowKeyCodec: Codec<FlowKey> = {
  size: 44,
  encode: (k, v, o) => {
    v.setUint32(o, k.ifindex, true); v.setUint8(o + 4, k.egress ? 1 : 0); v.setUint8(o + 5, k.family); v.setUint8(o + 6, k.proto); v.setUint8(o + 7, k.tunnel ? 1 : 0);
    new Uint8Array(v.buffer, v.byteOffset + o + 8, 16).set(k.src); new Uint8Array(v.buffer, v.byteOffset + o + 24, 16).set(k.dst);
    v.setUint16(o + 40, k.sport, true); v.setUint16(o + 42, k.dport, true);
  },
  decode: (v, o) => ({
    ifindex: v.getUint32(o, true), egress: v.getUint8(o + 4) === 1, family: v.getUint8(o + 5), proto: v.getUint8(o + 6), tunnel: v.getUint8(o + 7) === 1,
    src: b16(v, o + 8), dst: b16(v, o + 24), sport: v.getUint16(o + 40, true), dport: v.getUint16(o + 42, true),
  }),
};

/** struct flow_state: 64 bytes. */
export const flowStateCodec: Codec<FlowState> = {
  size: 64,
  encode: (s, v, o) => {
    [s.firstNs, s.lastNs, s.lastReportNs, s.packets, s.bytes, s.reportedPackets, s.reportedBytes].forEach((x, i) => v.setBigUint64(o + 8 * i, BigInt(x), true));
    v.setUint8(o + 56, s.flagsSeen);
  },
  decode: (v, o) => {
    const g = (i: number) => Number(v.getBigUint64(o + 8 * i, true));
    return { firstNs: g(0), lastNs: g(1), lastReportNs: g(2), packets: g(3), bytes: g(4), reportedPackets: g(5), reportedBytes: g(6), flagsSeen: v.getUint8(o + 56) };
  },
};

/** A flow's packets counted in one CPU's slot of flow_cache and not yet in `flows`. */
export interface FlowCacheSlot {
  key: FlowKey;
  valid: boolean;
  packets: number;
  bytes: number;
  /** bpf_ktime_get_coarse_ns: CLOCK_MONOTONIC at a tick's precision. */
  lastNs: number;
  reportNs: number;
  flagsSeen: number;
}

/** struct flow_cache: 88 bytes, the key first. */
export const flowCacheCodec: Codec<FlowCacheSlot> = {
  size: 88,
  encode: (c, v, o) => {
    flowKeyCodec.encode(c.key, v, o);
    v.setUint32(o + 44, c.valid ? 1 : 0, true);
    [c.packets, c.bytes, c.lastNs, c.reportNs].forEach((x, i) => v.setBigUint64(o + 48 + 8 * i, BigInt(x), true));
    v.setUint8(o + 80, c.flagsSeen);
  },
  decode: (v, o) => {
    const g = (i: number) => Number(v.getBigUint64(o + 48 + 8 * i, true));
    return { key: flowKeyCodec.decode(v, o), valid: v.getUint32(o + 44, true) !== 0, packets: g(0), bytes: g(1), lastNs: g(2), reportNs: g(3), flagsSeen: v.getUint8(o + 80) };
  },
};

/** flow_cache's slots, as observe.c sizes it. */
export const CACHE_SLOTS = 1024;

/** Where observe.c's cache_slot() puts a key: the same folds and multiplications, in 32 bits. */
export function cacheSlot(k: FlowKey): number {
  const b = new Uint8Array(flowKeyCodec.size);
  const v = new DataView(b.buffer);
  flowKeyCodec.encode(k, v, 0);
  const w = (i: number) => v.getUint32(4 * i, true);
  const a = w(0) ^ w(1) ^ w(2) ^ w(3) ^ w(4) ^ w(5);
  const c = w(6) ^ w(7) ^ w(8) ^ w(9) ^ w(10);
  let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(c, 0x85ebca77)) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  return h & (CACHE_SLOTS - 1);
}

/** Whether two flow keys are one. */
export function sameFlowKey(a: FlowKey, b: FlowKey): boolean {
  return a.ifindex === b.ifindex && a.egress === b.egress && a.family === b.family && a.proto === b.proto && a.tunnel === b.tunnel
    && a.sport === b.sport && a.dport === b.dport && a.src.every((x, i) => x === b.src[i]) && a.dst.every((x, i) => x === b.dst[i]);
}

function addr16(text: string | undefined, what: string): { family: number; bytes: Uint8Array } | undefined {
  if (text === undefined) return undefined;
  const a = ipBytes(text);
  if (!a) throw new TypeError(`trace match: ${what} ${JSON.stringify(text)} is not an address`);
  const out = new Uint8Array(16);
  out.set(a.bytes);
  return { family: a.family, bytes: out };
}

/** IPv4 in the first 4 of 16 bytes (as the program stores it), IPv6 whole. */
function addrText(family: number, b: Uint8Array): string {
  return (family === 4 ? formatIPBytes(b.subarray(0, 4)) : family === 6 ? formatIPBytes(b) : "") ?? "";
}

/** struct config: 64 bytes. */
export const configCodec: Codec<FlowTapConfig> = {
  size: 64,
  encode: (c, v, o) => {
    new Uint8Array(v.buffer, v.byteOffset + o, 64).fill(0);
    v.setBigUint64(o, BigInt(Math.round(c.reportIntervalNs)), true);
    if (c.vxlanPorts.length > 4) throw new RangeError(`at most 4 VXLAN ports, not ${c.vxlanPorts.length}`);
    c.vxlanPorts.forEach((p, i) => v.setUint16(o + 8 + 2 * i, p, true));
    const t = c.trace;
    if (!t) return;
    const src = addr16(t.src, "src"), dst = addr16(t.dst, "dst");
    if (src && dst && src.family !== dst.family) throw new TypeError("trace match: src and dst of different families");
    v.setUint8(o + 16, 1);
    v.setUint8(o + 17, src?.family ?? dst?.family ?? 0);
    v.setUint8(o + 18, t.proto ?? 0);
    v.setUint8(o + 19, t.bothWays === false ? 0 : 1);
    v.setUint8(o + 20, src ? 1 : 0);
    v.setUint8(o + 21, dst ? 1 : 0);
    v.setUint16(o + 24, t.icmpId ?? t.srcPort ?? 0, true);
    v.setUint16(o + 26, t.icmpId !== undefined ? 0 : t.dstPort ?? 0, true);
    if (src) new Uint8Array(v.buffer, v.byteOffset + o + 28, 16).set(src.bytes);
    if (dst) new Uint8Array(v.buffer, v.byteOffset + o + 44, 16).set(dst.bytes);
  },
  decode: (v, o) => {
    const ports = [0, 1, 2, 3].map((i) => v.getUint16(o + 8 + 2 * i, true)).filter((p) => p !== 0);
    const c: FlowTapConfig = { reportIntervalNs: Number(v.getBigUint64(o, true)), vxlanPorts: ports };
    if (v.getUint8(o + 16)) {
      const family = v.getUint8(o + 17), t: TraceMatch = { bothWays: v.getUint8(o + 19) === 1 };
      if (v.getUint8(o + 18)) t.proto = v.getUint8(o + 18);
      if (v.getUint8(o + 20)) t.src = addrText(family, b16(v, o + 28));
      if (v.getUint8(o + 21)) t.dst = addrText(family, b16(v, o + 44));
      const sp = v.getUint16(o + 24, true), dp = v.getUint16(o + 26, true);
      if (t.proto === 1 || t.proto === 58) { if (sp) t.icmpId = sp; } else { if (sp) t.srcPort = sp; if (dp) t.dstPort = dp; }
      c.trace = t;
    }
    return c;
  },
};

export const EVENT_SIZE = 336;

/** struct flow_event (observe.c) to an event; `offsetNs` is realtime minus monotonic. */
export function decodeFlowEvent(rec: Uint8Array, offsetNs: bigint): FlowTapEvent {
  if (rec.length < EVENT_SIZE) throw new RangeError(`flow event of ${rec.length} bytes, expected ${EVENT_SIZE}`);
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const family = v.getUint8(41) as 0 | 4 | 6, proto = v.getUint8(42);
  const bytes16 = (o: number) => rec.subarray(o, o + 16);
  const frameLen = Math.min(v.getUint16(138, true), 192);
  const e: FlowTapEvent = {
    timeNs: v.getBigUint64(0, true) + offsetNs, firstNs: v.getBigUint64(8, true) + offsetNs,
    packets: Number(v.getBigUint64(16, true)), bytes: Number(v.getBigUint64(24, true)),
    ifindex: v.getUint32(32, true), len: v.getUint32(36, true), egress: v.getUint8(40) === 1, family, proto,
    reason: REASONS[v.getUint8(43)] || "trace", tcpFlags: v.getUint8(44), flagsSeen: v.getUint8(45),
    srcPort: v.getUint16(48, true), dstPort: v.getUint16(50, true),
    src: addrText(family, bytes16(56)), dst: addrText(family, bytes16(72)), traced: v.getUint8(88) === 1,
    ethertype: v.getUint16(136, true), frame: rec.slice(144, 144 + frameLen),
  };
  if (proto === 1 || proto === 58) e.icmp = { type: v.getUint8(46), code: v.getUint8(47), id: v.getUint16(52, true), seq: v.getUint16(54, true) };
  if (v.getUint8(89)) {
    const of = v.getUint8(90);
    e.tunnel = {
      vni: v.getUint32(92, true), outerSrcPort: v.getUint16(96, true), outerDstPort: v.getUint16(98, true), outerLen: v.getUint32(100, true),
      outerSrc: addrText(of, bytes16(104)), outerDst: addrText(of, bytes16(120)),
    };
  }
  return e;
}
