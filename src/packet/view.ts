// A dissected packet as a short list a person reads (the web view's packet-in-packet panel, and
// the agent's /v1/packets): each layer with its nesting, its header bytes and one line of what
// it says; and the tunnel's sizes. Pure.
import type { Dissection, Layer } from "./decode/layers.ts";
import { formatIPBytes } from "../net/cidr.ts";
import { dissect, decodeOptions } from "./dissect.ts";

export interface LayerView {
  layer: string;
  depth: number;
  headerBytes: number;
  text: string;
}

export interface PacketView {
  wireLen: number;
  layers: LayerView[];
  tunnel?: { vni: number; outerIpLen: number; innerIpLen: number; overheadBytes: number };
}

const v4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const mac = (f: Uint8Array, at: number) => [...f.subarray(at, at + 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");

function text(l: Layer, f: Uint8Array): string {
  switch (l.kind) {
    case "eth": return `${mac(f, l.offset + 6)} > ${mac(f, l.offset)}`;
    case "ipv4": return `${v4(l.src)} > ${v4(l.dst)}, ${l.totalLen} B, ttl ${l.ttl}`;
    case "ipv6": return `${formatIPBytes(f.subarray(l.srcAt, l.srcAt + 16))} > ${formatIPBytes(f.subarray(l.dstAt, l.dstAt + 16))}, ${40 + l.payloadLen} B, hlim ${l.hopLimit}`;
    case "udp": return `${l.srcPort} > ${l.dstPort}, ${l.length} B`;
    case "tcp": return `${l.srcPort} > ${l.dstPort}, ${l.payloadLen} B payload`;
    case "icmp": case "icmp6": return `type ${l.type} code ${l.code}${l.seq !== undefined ? `, id ${l.id} seq ${l.seq}` : ""}`;
    case "vxlan": return `vni ${l.vni}`;
    case "geneve": return `vni ${l.vni}`;
    case "wireguard": return `message type ${l.msgType}${l.sealedLen !== undefined ? `, sealed ${l.sealedLen} B` : ""}`;
    default: return "";
  }
}

export function viewOf(d: Dissection): PacketView {
  const out: PacketView = { wireLen: d.wireLen, layers: d.layers.map((l) => ({ layer: l.kind, depth: l.depth, headerBytes: l.headerLen, text: text(l, d.frame) })) };
  const t = d.tunnel;
  if (t) out.tunnel = { vni: t.vni, outerIpLen: t.outerIpLen, innerIpLen: t.innerIpLen, overheadBytes: t.outerIpLen - t.innerIpLen };
  return out;
}

const OPTS = decodeOptions({ detail: false });

/** An Ethernet frame (maybe cut short) as a view. */
export function viewFrame(frame: Uint8Array, wireLen: number): PacketView {
  return viewOf(dissect({ data: frame, wireLen, linkType: 1 }, OPTS));
}
