// The eBPF path's events in the flow observer's terms: a flow tap event (bpf/observe.c) to the
// flow key the packet-ring path reads from frames, the kernel's own key of a flow (to ask the
// LRU for what it counted since its last event), and a kernel drop (bpf/drops.c) to the packet
// it dropped, the point it died at and whose namespace it was in. The drop says where itself
// (device and network namespace), so no drop is guessed from nearby packets here: a drop in a
// namespace that is not this node's or one of its pods' is never this node's.
import { statSync } from "node:fs";
import type { FlowKey as TapKey, FlowTapEvent } from "../kernel/bpf/observer.ts";
import type { DropTapEvent } from "../kernel/bpf/drops.ts";
import { ipBytes } from "../net/cidr.ts";
import { type FlowKey, flowKey } from "../packet/flow-key.ts";

/** The flow key of a tap event: read from its frame as the ring path reads a packet, else from the event's own fields. */
export function tapEventKey(e: FlowTapEvent, vxlanPorts: ReadonlySet<number>): FlowKey | undefined {
  const fromFrame = e.frame.length ? flowKey(e.frame, vxlanPorts) : undefined;
  if (fromFrame) {
    // The frame is its first 128 bytes: VXLAN over IPv6 puts an inner ICMPv6 or L4 header past
    // them (14 + 40 + 8 + 8 + 14 + 40 = 124), so what the frame could not show comes from the
    // event, which the program parsed whole.
    const echo = !!e.icmp && (e.icmp.type === 8 || e.icmp.type === 0 || e.icmp.type === 128 || e.icmp.type === 129);
    if (e.icmp && (fromFrame.icmpType === undefined || (echo && fromFrame.icmpId === undefined))) {
      fromFrame.icmpType = e.icmp.type;
      fromFrame.icmpCode = e.icmp.code;
      if (echo) { fromFrame.icmpId = e.icmp.id; fromFrame.icmpSeq = e.icmp.seq; }
    } else if (!e.icmp && (e.proto === 6 || e.proto === 17 || e.proto === 132) && fromFrame.srcPort === 0 && fromFrame.dstPort === 0) {
      fromFrame.srcPort = e.srcPort;
      fromFrame.dstPort = e.dstPort;
      if (e.proto === 6 && fromFrame.tcpFlags === undefined) fromFrame.tcpFlags = e.tcpFlags;
    }
    return fromFrame;
  }
  if (e.family !== 4 && e.family !== 6) return undefined;
  const k: FlowKey = { family: e.family, src: e.src, dst: e.dst, proto: e.proto, srcPort: 0, dstPort: 0, ipLen: e.len - 14 };
  if (e.icmp) {
    k.icmpType = e.icmp.type;
    k.icmpCode = e.icmp.code;
    if (e.icmp.type === 8 || e.icmp.type === 0 || e.icmp.type === 128 || e.icmp.type === 129) { k.icmpId = e.icmp.id; k.icmpSeq = e.icmp.seq; }
  } else {
    k.srcPort = e.srcPort;
    k.dstPort = e.dstPort;
  }
  if (e.proto === 6) k.tcpFlags = e.tcpFlags;
  if (e.tunnel) {
    const outerIpLen = e.tunnel.outerLen - 14;
    k.tunnel = { kind: "vxlan", vni: e.tunnel.vni, outerSrc: e.tunnel.outerSrc, outerDst: e.tunnel.outerDst, outerSrcPort: e.tunnel.outerSrcPort, outerDstPort: e.tunnel.outerDstPort, outerIpLen, overhead: outerIpLen - k.ipLen };
  }
  return k;
}

/** The frame's length at its hook: the outer frame's for a tunnelled packet (as the packet ring gives it). */
export function tapWireLen(e: FlowTapEvent): number {
  return e.tunnel ? e.tunnel.outerLen : e.len;
}

/** The key the program counts this event's flow under, in its LRU (observe.c: struct flow_key). */
export function tapKernelKey(e: FlowTapEvent): TapKey | undefined {
  const a16 = (text: string) => {
    const a = ipBytes(text);
    if (!a) return undefined;
    const out = new Uint8Array(16);
    out.set(a.bytes);
    return out;
  };
  const src = a16(e.src), dst = a16(e.dst);
  if (!src || !dst) return undefined;
  return { ifindex: e.ifindex, egress: e.egress, family: e.family, proto: e.proto, tunnel: !!e.tunnel, src, dst, sport: e.srcPort, dport: e.dstPort };
}

/** One string per kernel flow key: the observer's table is keyed the way the kernel's is. */
export function tapFlowId(e: FlowTapEvent): string {
  return `${e.ifindex}/${e.egress ? 1 : 0}/${e.tunnel ? 1 : 0}/${e.proto}/${e.src}/${e.dst}/${e.srcPort}/${e.dstPort}`;
}

/**
 * Whether a drop happened on the way out of its device (a tunnel's transmit, a neighbour that
 * never answered, a queue): the egress side of the device; everything else dies on the way in.
 */
export function transmitDrop(reason: string, symbol = ""): boolean {
  if (/^(NO_TX_TARGET|TUNNEL_TXINFO|VXLAN_NO_REMOTE|QDISC_|TC_EGRESS|NEIGH_|DEV_READY|FULL_RING|TXQ_)/.test(reason)) return true;
  return /^(vxlan_xmit|__dev_queue_xmit|dev_queue_xmit|neigh_|ip_finish_output|ip6_finish_output|sch_)/.test(symbol);
}

/** The dropped packet as a frame flowKey reads (the drop gives it from the network header). */
export function dropFrame(d: DropTapEvent): Uint8Array {
  const f = new Uint8Array(14 + d.frame.length);
  if (d.mac && d.mac.length >= 14) f.set(d.mac.subarray(0, 12));
  f[12] = d.protocol >> 8;
  f[13] = d.protocol & 255;
  f.set(d.frame, 14);
  return f;
}

/** A network namespace's inode (what the drop program reports), or undefined when it cannot be read. */
export function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}
