// What the decoders produce: one Layer per header, outer first, inner frames of tunnels after
// their tunnel header with depth + 1. Layers keep numbers and offsets into the frame; text is
// made only by the formatters, so a summary pass never formats an address it does not print.

export type LayerKind =
  | "eth" | "sll" | "sll2" | "arp" | "ipv4" | "ipv6" | "icmp" | "icmp6" | "udp" | "tcp" | "vxlan" | "geneve" | "wireguard";

interface Base {
  depth: number;
  /** Offset of the header in the frame. */
  offset: number;
  headerLen: number;
}

export interface EthLayer extends Base { kind: "eth"; etherType: number; vlans: number[] }
export interface SllLayer extends Base { kind: "sll" | "sll2"; etherType: number; pktType: number; ifindex: number }
export interface ArpLayer extends Base { kind: "arp"; op: number; senderIp: number; targetIp: number; senderMacAt: number }
export interface Ipv4Layer extends Base {
  kind: "ipv4"; src: number; dst: number; proto: number; totalLen: number; ttl: number; id: number;
  tos: number; flags: number; fragOffset: number; checksumOk: boolean; optionsLen: number;
  /** BIG TCP: the header said 0 (a GSO packet over 64 KiB), and the length is presumed from the capture, as tcpdump does. */
  presumedLength?: true;
}
export interface Ipv6Layer extends Base {
  kind: "ipv6"; srcAt: number; dstAt: number; proto: number; payloadLen: number; hopLimit: number; flowLabel: number;
  extHeaders: number[]; fragment?: { offset: number; more: boolean; id: number };
  /** A jumbogram (BIG TCP over IPv6): payload length 0, the length taken from its jumbo option or presumed from the capture. */
  presumedLength?: true;
}
export interface IcmpLayer extends Base { kind: "icmp" | "icmp6"; type: number; code: number; id?: number; seq?: number }
/** Where a TCP/UDP checksum is verified from (see checksums.ts): the segment and its pseudo-header sum. */
interface Segment { segEnd: number; pseudo: number }
export interface UdpLayer extends Base, Segment { kind: "udp"; srcPort: number; dstPort: number; length: number; checksum: number; checksumState: ChecksumState }
export interface TcpLayer extends Base, Segment {
  kind: "tcp"; srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window: number;
  payloadLen: number; checksum: number; checksumState: ChecksumState;
}
export interface VxlanLayer extends Base { kind: "vxlan"; flags: number; vni: number; groupPolicy?: number }
export interface GeneveLayer extends Base { kind: "geneve"; vni: number; protocol: number; optionsLen: number; options: { cls: number; type: number; len: number }[]; oam: boolean; critical: boolean }

/**
 * A WireGuard message (its header: the rest is encrypted). Transport data (type 4): 16 header
 * bytes (type, receiver index, 64-bit counter), the inner packet encrypted and padded to a
 * multiple of 16, and a 16-byte authentication tag. Handshakes (types 1-3) carry no packet.
 */
export interface WireguardLayer extends Base { kind: "wireguard"; msgType: number; receiver?: number; counter?: string; sealedLen?: number }
export type Layer = EthLayer | SllLayer | ArpLayer | Ipv4Layer | Ipv6Layer | IcmpLayer | UdpLayer | TcpLayer | VxlanLayer | GeneveLayer | WireguardLayer;

/**
 * ok: verified. none: zero (UDP over IPv4 may omit it). partial: the field holds only the
 * pseudo-header sum, as a sender with checksum offload leaves it when the capture is taken on
 * that host (veth, or a NIC before transmit): a capture artefact, not corruption. lco: an
 * outer tunnel UDP checksum that is right once the inner partial checksum is filled in (Linux
 * computes it ahead: local checksum offload). bad: wrong.
 * unchecked: not verified (summary mode, or the payload was cut by the snaplen).
 */
export type ChecksumState = "ok" | "none" | "partial" | "lco" | "bad" | "unchecked";

export interface Tunnel {
  kind: "vxlan" | "geneve";
  vni: number;
  /** Index in layers of the outer IP header, the tunnel header and the inner IP header. */
  outerIp: number;
  tunnelLayer: number;
  innerIp: number;
  outerIpLen: number;
  innerIpLen: number;
  /** Bytes between the outer IP's start and the inner IP's start: outer IP + UDP + tunnel + inner Ethernet. */
  encapBytes: number;
  outerFrameLen: number;
  innerFrameLen: number;
}

export interface Dissection {
  frame: Uint8Array;
  wireLen: number;
  linkType: number;
  layers: Layer[];
  /** Set when a header is inconsistent; decoding stopped at that layer. */
  malformed?: { layer: string; offset: number; reason: string };
  /** Set when the capture's snapshot length cut the packet before a header ended. */
  cut?: { layer: string; offset: number };
  tunnel?: Tunnel;
  /** An encrypted tunnel's packet: what it costs, though the packet inside cannot be read. */
  sealed?: Sealed;
}

export interface Sealed {
  kind: "wireguard";
  outerIpLen: number;
  /** The inner packet's length as sealed: its real length rounded up to a multiple of 16. */
  innerPaddedLen: number;
  /** Outer IP + UDP + WireGuard's header and tag: 60 over IPv4 (padding not counted). */
  overheadBytes: number;
}
