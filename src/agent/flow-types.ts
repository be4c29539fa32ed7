// What the agent's API says about traffic: flow events and sightings, as `gauze observe`,
// `gauze trace` and `gauze ui` read them (NDJSON and JSON on the agent's socket; field names in
// docs/observe.md). The observer produces them; the readers need nothing else of the agent.
import type { FlowKey } from "../packet/flow-key.ts";

export type ObservationPoint = "from-pod" | "to-pod" | "from-bridge" | "to-bridge" | "to-overlay" | "from-overlay" | "to-network" | "from-network" | "host";

export interface Endpoint {
  ip: string;
  port?: number;
  /** namespace/name when the address is a pod of this node. */
  pod?: string;
}

export interface FlowEvent {
  /** Milliseconds since the epoch, with microseconds. */
  time: number;
  node: string;
  source: Endpoint;
  destination: Endpoint;
  protocol: string;
  icmp?: { type: number; code: number; id?: number; seq?: number };
  tcpFlags?: string[];
  /** audit: forwarded, but an audit-mode NetworkPolicy would have dropped it (policy says which). */
  verdict: "forwarded" | "dropped" | "audit";
  /** A NetworkPolicy's part in the verdict: which policy denied it (or would have), and why, in words. */
  policy?: { verdict: "denied" | "audit"; name?: string; reason: string };
  dropReason?: string;
  /** The kernel function the packet was dropped in. */
  dropLocation?: string;
  observationPoint: ObservationPoint;
  interface: { index: number; name: string };
  /** Packets and bytes (as on that interface) since the flow's previous event at this point. */
  packets: number;
  bytes: number;
  /** The last packet's (inner) IP length, and on a tunnel its outer one and the difference. */
  ipLen: number;
  /** Set while the node samples its TCP bulk (busy): 1 in this many such segments was seen, and packets and bytes are estimates. */
  sampling?: number;
  tunnel?: { protocol: "vxlan"; vni: number; outer: { source: string; destination: string; sourcePort: number; destinationPort: number }; outerIpLen: number; overheadBytes: number };
}

/** One packet as the node saw it at one point: kept briefly for trace and drop attribution. */
export interface Sighting {
  time: number;
  ifindex: number;
  point: ObservationPoint;
  egress: boolean;
  len: number;
  key: FlowKey;
  /** Bytes of the frame kept (its first FRAME_BYTES at most). */
  snap: number;
  /** Link chatter (neighbour discovery, MLD): never a flow. */
  chatter?: boolean;
}

/** A packet's identity as trace and the packet view ask for it: addresses either way, protocol, a port or an ICMP id. */
export interface SightingMatch { src?: string; dst?: string; proto?: number; srcPort?: number; dstPort?: number; icmpId?: number; since?: number }

export function sightingMatches(s: Sighting, m: SightingMatch): boolean {
  const k = s.key;
  if (m.since !== undefined && s.time < m.since) return false;
  if (m.proto !== undefined && k.proto !== m.proto) return false;
  if (m.icmpId !== undefined && k.icmpId !== m.icmpId) return false;
  if (m.srcPort !== undefined && k.srcPort !== m.srcPort && k.dstPort !== m.srcPort) return false;
  if (m.dstPort !== undefined && k.dstPort !== m.dstPort && k.srcPort !== m.dstPort) return false;
  if (m.src !== undefined && k.src !== m.src && k.dst !== m.src) return false;
  if (m.dst !== undefined && k.src !== m.dst && k.dst !== m.dst) return false;
  return true;
}

