// The few fields a flow is made of, read straight from a frame's first bytes: the fast path
// the agent runs on every packet it sees (the full dissector is for the packets a person looks
// at). Ethernet (one VLAN tag), IPv4/IPv6, ICMP, TCP, UDP, SCTP's ports; VXLAN on the given ports is opened and
// the flow is the inner packet's, with the outer addresses, VNI and sizes kept as its tunnel.
import { formatIPBytes } from "../net/cidr.ts";

export interface TunnelInfo {
  kind: "vxlan";
  vni: number;
  outerSrc: string;
  outerDst: string;
  outerSrcPort: number;
  outerDstPort: number;
  /** Outer IP packet length, and what encapsulation adds to the inner IP packet. */
  outerIpLen: number;
  overhead: number;
}

export interface FlowKey {
  family: 4 | 6;
  src: string;
  dst: string;
  /** IP protocol number: 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, 132 SCTP. */
  proto: number;
  srcPort: number;
  dstPort: number;
  /** ICMP/ICMPv6: type, code, and for echo the identifier and sequence. */
  icmpType?: number;
  icmpCode?: number;
  icmpId?: number;
  icmpSeq?: number;
  /** TCP flag bits (FIN 1, SYN 2, RST 4, PSH 8, ACK 16). */
  tcpFlags?: number;
  /** The (inner) IP packet's length as its header says. */
  ipLen: number;
  tunnel?: TunnelInfo;
}

const ETH_IPV4 = 0x0800, ETH_IPV6 = 0x86dd, ETH_VLAN = 0x8100;

/** The flow fields of an Ethernet frame; undefined for what is not IP (ARP, LLDP) or too short. */
export function flowKey(b: Uint8Array, vxlanPorts: ReadonlySet<number>, depth = 0): FlowKey | undefined {
  if (b.length < 14) return undefined;
  let type = (b[12]! << 8) | b[13]!;
  let off = 14;
  if (type === ETH_VLAN && b.length >= 18) {
    type = (b[16]! << 8) | b[17]!;
    off = 18;
  }
  return ipKey(b, off, type, vxlanPorts, depth);
}

function ipKey(b: Uint8Array, off: number, type: number, vxlanPorts: ReadonlySet<number>, depth: number): FlowKey | undefined {
  let family: 4 | 6, proto: number, l4: number, ipLen: number, src: string, dst: string;
  if (type === ETH_IPV4) {
    if (b.length < off + 20 || b[off]! >> 4 !== 4) return undefined;
    const ihl = (b[off]! & 15) * 4;
    family = 4;
    proto = b[off + 9]!;
    ipLen = (b[off + 2]! << 8) | b[off + 3]!;
    src = formatIPBytes(b.subarray(off + 12, off + 16))!;
    dst = formatIPBytes(b.subarray(off + 16, off + 20))!;
    // A fragment after the first has no transport header.
    const frag = ((b[off + 6]! & 0x1f) << 8) | b[off + 7]!;
    l4 = frag === 0 ? off + ihl : -1;
  } else if (type === ETH_IPV6) {
    if (b.length < off + 40 || b[off]! >> 4 !== 6) return undefined;
    family = 6;
    proto = b[off + 6]!;
    ipLen = 40 + ((b[off + 4]! << 8) | b[off + 5]!);
    src = formatIPBytes(b.subarray(off + 8, off + 24))!;
    dst = formatIPBytes(b.subarray(off + 24, off + 40))!;
    l4 = off + 40;
  } else {
    return undefined;
  }
  const k: FlowKey = { family, src, dst, proto, srcPort: 0, dstPort: 0, ipLen };
  if (l4 < 0) return k;
  // SCTP's common header starts with the two ports too.
  if ((proto === 6 || proto === 17 || proto === 132) && b.length >= l4 + 4) {
    k.srcPort = (b[l4]! << 8) | b[l4 + 1]!;
    k.dstPort = (b[l4 + 2]! << 8) | b[l4 + 3]!;
    if (proto === 6 && b.length >= l4 + 14) k.tcpFlags = b[l4 + 13]!;
    // VXLAN: the flow is the inner packet's; this one is its tunnel.
    if (proto === 17 && depth === 0 && vxlanPorts.has(k.dstPort) && b.length >= l4 + 8 + 8 + 14) {
      const v = l4 + 8;
      if ((b[v]! & 0x08) !== 0) {
        const inner = flowKey(b.subarray(v + 8), vxlanPorts, 1);
        if (inner) {
          inner.tunnel = {
            kind: "vxlan", vni: (b[v + 4]! << 16) | (b[v + 5]! << 8) | b[v + 6]!, outerSrc: src, outerDst: dst,
            outerSrcPort: k.srcPort, outerDstPort: k.dstPort, outerIpLen: ipLen, overhead: ipLen - inner.ipLen,
          };
          return inner;
        }
      }
    }
  } else if ((proto === 1 || proto === 58) && b.length >= l4 + 2) {
    k.icmpType = b[l4]!;
    k.icmpCode = b[l4 + 1]!;
    const echo = proto === 1 ? k.icmpType === 8 || k.icmpType === 0 : k.icmpType === 128 || k.icmpType === 129;
    if (echo && b.length >= l4 + 8) {
      k.icmpId = (b[l4 + 4]! << 8) | b[l4 + 5]!;
      k.icmpSeq = (b[l4 + 6]! << 8) | b[l4 + 7]!;
    }
  }
  return k;
}

/**
 * The link's own chatter, not a flow: IPv6 neighbour discovery and MLD (ICMPv6 130-143, MLD
 * behind a hop-by-hop header), anything from a link-local or to a multicast IPv6 address; IGMP and
 * IPv4 link-local multicast.
 */
export function isLinkChatter(k: FlowKey): boolean {
  if (k.family === 4) return k.dst.startsWith("224.0.0.") || k.proto === 2; // link-local multicast, IGMP

  if (k.proto === 0 || (k.proto === 58 && k.icmpType !== undefined && k.icmpType >= 130 && k.icmpType <= 143)) return true;
  return k.dst.startsWith("ff") || k.src.startsWith("fe80:");
}

export function protocolName(proto: number): string {
  return proto === 1 ? "icmp" : proto === 6 ? "tcp" : proto === 17 ? "udp" : proto === 58 ? "icmp6" : proto === 132 ? "sctp" : `ip-proto-${proto}`;
}

/** TCP flags as names, in the order Hubble prints them. */
export function tcpFlagNames(f: number): string[] {
  const names: [number, string][] = [[2, "SYN"], [16, "ACK"], [1, "FIN"], [4, "RST"], [8, "PSH"], [32, "URG"]];
  return names.filter(([bit]) => (f & bit) !== 0).map(([, n]) => n);
}
