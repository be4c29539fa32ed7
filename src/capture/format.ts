// Turning dissections into output: text blocks (outer and inner layers indented, each with its
// header length, and the tunnel's size annotation), and JSON lines with stable field names
// (documented in the README).
import { rfc3339Nanos } from "../util/time.ts";
import type {
  ArpLayer, ChecksumState, Dissection, EthLayer, GeneveLayer, IcmpLayer, WireguardLayer, Ipv4Layer, Ipv6Layer, Layer, SllLayer, TcpLayer,
  Tunnel, UdpLayer, VxlanLayer,
} from "../packet/decode/layers.ts";
import type { Packet } from "./reader.ts";
import { ipv4Text, ipv6At, macAt } from "./addr.ts";
import { type AsciiSink, sinkToString } from "./ascii-sink.ts";
import { walkTcpOptions } from "../packet/decode/transport.ts";

const IP_PROTOS: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 47: "gre", 50: "esp", 132: "sctp" };
const ICMP_TYPES: Record<number, string> = { 0: "echo reply", 3: "destination unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded" };
const ICMP6_TYPES: Record<number, string> = { 1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 128: "echo request", 129: "echo reply", 133: "router solicitation", 143: "multicast listener report v2", 134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement" };
const TCP_FLAGS = ["F", "S", "R", "P", ".", "U", "E", "W", "N"];
const LAYER_TITLE: Record<Layer["kind"], string> = { eth: "Ethernet", sll: "Linux cooked", sll2: "Linux cooked v2", arp: "ARP", ipv4: "IPv4", ipv6: "IPv6", icmp: "ICMP", icmp6: "ICMPv6", udp: "UDP", tcp: "TCP", vxlan: "VXLAN", geneve: "Geneve", wireguard: "WireGuard" };

function hex(n: number, width: number): string {
  return "0x" + n.toString(16).padStart(width, "0");
}


/** Short per packet; what "offload" means is said once at the end of the output (CHECKSUM_LEGEND). */
const CKSUM_NOTE: Record<ChecksumState, string> = {
  ok: " (correct)", none: "", partial: " (offload)", lco: " (correct after offload)", bad: " (incorrect)", unchecked: "",
};

export const CHECKSUM_LEGEND =
  "note: \"(offload)\" checksums are a capture artefact, not corruption: the sender left the field for the NIC/veth to\n" +
  "  fill in after tcpdump saw the packet (checksum offload); \"(correct after offload)\" is a tunnel's outer UDP checksum\n" +
  "  computed ahead for that final value (local checksum offload).\n";

function writeTcpOption(w: AsciiSink, f: Uint8Array, kind: number, at: number, len: number): void {
  if (kind === 1) w.str("nop");
  else if (kind === 2 && len === 4) w.str("mss ").num((f[at + 2]! << 8) | f[at + 3]!);
  else if (kind === 3 && len === 3) w.str("wscale ").num(f[at + 2]!);
  else if (kind === 4) w.str("sackOK");
  else if (kind === 8 && len === 10) w.str("TS val ").num(u32(f, at + 2)).str(" ecr ").num(u32(f, at + 6));
  else if (kind === 5) {
    w.str("sack {");
    for (let b = at + 2; b + 8 <= at + len; b += 8) w.str(b > at + 2 ? " " : "").num(u32(f, b)).char(58).num(u32(f, b + 4));
    w.char(125);
  } else w.str("opt-").num(kind);
}

// The option walker's visitor, made once: a closure per packet showed in profiles.
const optState = { w: undefined as AsciiSink | undefined, f: new Uint8Array(0) as Uint8Array, first: true };
const visitOption = (kind: number, at: number, len: number) => {
  if (!optState.first) optState.w!.char(44);
  optState.first = false;
  writeTcpOption(optState.w!, optState.f, kind, at, len);
};

/** Linux's options on every data segment: nop, nop, timestamps. */
function isUsualTcpOptions(f: Uint8Array, from: number, to: number): boolean {
  return to - from === 12 && f[from] === 1 && f[from + 1] === 1 && f[from + 2] === 8 && f[from + 3] === 10;
}

function writeTcpOptions(w: AsciiSink, f: Uint8Array, from: number, to: number): void {
  w.str(", options [");
  optState.w = w;
  optState.f = f;
  optState.first = true;
  walkTcpOptions(f, from, to, visitOption);
  w.char(93);
}

function u32(f: Uint8Array, at: number): number {
  return ((f[at]! << 24) >>> 0) + (f[at + 1]! << 16) + (f[at + 2]! << 8) + f[at + 3]!;
}

export function tcpOptionList(f: Uint8Array, from: number, to: number): string[] {
  const out: string[] = [];
  walkTcpOptions(f, from, to, (kind, at, len) => out.push(sinkToString((w) => writeTcpOption(w, f, kind, at, len))));
  return out;
}

/** What the text output has shown that its closing legend must explain. */
export const shown = { offload: false };

function writeChecksum(w: AsciiSink, state: ChecksumState, value: number): void {
  if (state === "partial" || state === "lco") shown.offload = true;
  if (state === "none") w.str("no cksum");
  else w.str("cksum ").hex(value, 4).str(CKSUM_NOTE[state]);
}

const FLAG_TEXT: string[] = [];

export function tcpFlags(flags: number): string {
  const cached = FLAG_TEXT[flags];
  if (cached !== undefined) return cached;
  let s = "";
  for (let i = 0; i < TCP_FLAGS.length; i++) if (flags & (1 << i)) s += TCP_FLAGS[i];
  return (FLAG_TEXT[flags] = s || "none");
}

/** A switch, not a table lookup: objects keyed by numbers this large are slow dictionaries. */
function etherTypeName(t: number): string | undefined {
  switch (t) {
    case 0x0800: return "IPv4";
    case 0x86dd: return "IPv6";
    case 0x0806: return "ARP";
    case 0x8100: return "802.1Q";
    case 0x88a8: return "802.1ad";
    default: return undefined;
  }
}

function writeEtherType(w: AsciiSink, t: number): void {
  const name = etherTypeName(t);
  if (name) w.str(name);
  else w.str("ethertype ").hex(t, 4);
}

function writeProto(w: AsciiSink, p: number, unknown: string): void {
  const name = IP_PROTOS[p];
  if (name) w.str(name);
  else w.str(unknown).num(p);
}

/**
 * The body of a line written whole (after its indentation, title and header length); IPv4,
 * UDP and TCP lines are written as head and tail instead (writeLayerLine). One small function
 * per kind: as a single switch the JIT's optimising tier spent 160 ms compiling it, a quarter
 * of a 120 MB capture's run, while the rest of the run waited in its queue.
 */
function writeLayer(w: AsciiSink, l: Exclude<Layer, Ipv4Layer | UdpLayer | TcpLayer>, f: Uint8Array): void {
  switch (l.kind) {
    case "eth": return writeEth(w, l, f);
    case "sll": case "sll2": return writeSll(w, l);
    case "arp": return writeArp(w, l, f);
    case "ipv6": return writeIpv6(w, l, f);
    case "icmp": case "icmp6": return writeIcmp(w, l);
    case "vxlan": return writeVxlan(w, l);
    case "geneve": return writeGeneve(w, l);
    case "wireguard": return writeWireguard(w, l);
  }
}

const WG_TYPES = ["", "handshake initiation", "handshake response", "cookie reply", "transport data"];

function writeWireguard(w: AsciiSink, l: WireguardLayer): void {
  w.str(WG_TYPES[l.msgType] ?? "?");
  if (l.receiver !== undefined) w.str(", receiver ").str(hex(l.receiver, 8));
  if (l.counter !== undefined) w.str(", counter ").str(l.counter);
  if (l.sealedLen !== undefined) w.str(l.sealedLen === 0 ? ", keepalive" : ", sealed packet ").str(l.sealedLen === 0 ? "" : `${l.sealedLen} bytes (+16 tag)`);
}

function writeEth(w: AsciiSink, l: EthLayer, f: Uint8Array): void {
  w.mac(f, l.offset + 6).str(" > ").mac(f, l.offset).str(", ");
  if (l.vlans.length) w.str(`vlan ${l.vlans.join(".")}, `);
  writeEtherType(w, l.etherType);
}

function writeSll(w: AsciiSink, l: SllLayer): void {
  w.str(["host", "broadcast", "multicast", "other-host", "outgoing"][l.pktType] ?? `type ${l.pktType}`);
  if (l.kind === "sll2") w.str(" ifindex ").num(l.ifindex);
  w.str(", ");
  writeEtherType(w, l.etherType);
}

function writeArp(w: AsciiSink, l: ArpLayer, f: Uint8Array): void {
  if (l.op === 1) w.str("who-has ").ipv4(l.targetIp).str(" tell ").ipv4(l.senderIp);
  else if (l.op === 2) w.ipv4(l.senderIp).str(" is-at ").mac(f, l.senderMacAt);
  else w.str("op ").num(l.op);
}

/** Up to the first field that changes from packet to packet in one flow (see writeLayerLine). */
function writeIpv4Head(w: AsciiSink, l: Ipv4Layer): void {
  w.ipv4(l.src).str(" > ").ipv4(l.dst).str(", ");
  writeProto(w, l.proto, "proto ");
  w.str(", ttl ").num(l.ttl).str(", id ");
}

function writeIpv4Tail(w: AsciiSink, l: Ipv4Layer): void {
  w.num(l.id);
  // The rest of the line follows from fields that stay the same in bulk traffic.
  const slot = SLOT_IPV4_TAIL + (l.depth & 3);
  const flags = l.flags | (l.fragOffset * 8);
  const rest = l.optionsLen * 2 + (l.checksumOk ? 1 : 0);
  if (!reuse(w, slot, flags, l.totalLen, rest, 0, 0)) writeKept(w, slot, flags, l.totalLen, rest, 0, 0, () => writeIpv4Rest(w, l));
}

function writeIpv4Rest(w: AsciiSink, l: Ipv4Layer): void {
  if (l.flags & 2) w.str(", DF");
  if (l.fragOffset > 0 || l.flags & 1) w.str(", frag offset ").num(l.fragOffset).str(l.flags & 1 ? "+" : "");
  w.str(", len ").num(l.totalLen);
  if (l.presumedLength) w.str(" [was 0, presumed BIG TCP]");
  if (l.optionsLen) w.str(", options ").num(l.optionsLen).str(" bytes");
  if (!l.checksumOk) w.str(", bad header cksum");
}

function writeIpv6(w: AsciiSink, l: Ipv6Layer, f: Uint8Array): void {
  w.str(ipv6At(f, l.srcAt)).str(" > ").str(ipv6At(f, l.dstAt)).str(", ");
  writeProto(w, l.proto, "next header ");
  w.str(", hlim ").num(l.hopLimit).str(", payload ").num(l.payloadLen);
  if (l.presumedLength) w.str(" [was 0, jumbogram]");
  if (l.extHeaders.length) w.str(`, ext ${l.extHeaders.join(",")}`);
  if (l.fragment) w.str(", frag offset ").num(l.fragment.offset).str(l.fragment.more ? "+" : "");
}

function writeIcmp(w: AsciiSink, l: IcmpLayer): void {
  const name = (l.kind === "icmp" ? ICMP_TYPES : ICMP6_TYPES)[l.type];
  if (name) w.str(name);
  else w.str("type ").num(l.type).str(" code ").num(l.code);
  if (l.id !== undefined) w.str(", id ").num(l.id).str(", seq ").num(l.seq ?? 0);
}

function writeUdpHead(w: AsciiSink, l: UdpLayer): void {
  w.num(l.srcPort).str(" > ").num(l.dstPort).str(", len ");
}

function writeUdpTail(w: AsciiSink, l: UdpLayer): void {
  w.num(l.length).str(", ");
  writeChecksum(w, l.checksumState, l.checksum);
}

function writeTcpHead(w: AsciiSink, l: TcpLayer): void {
  w.num(l.srcPort).str(" > ").num(l.dstPort).str(", flags [").str(tcpFlags(l.flags)).str("], seq ");
}

function writeTcpTail(w: AsciiSink, l: TcpLayer, f: Uint8Array): void {
  w.num(l.seq);
  // The ack and window often repeat packet to packet, and so does the payload length: their
  // text is reused while they do (with Linux's usual options: up to the timestamp value).
  const from = l.offset + 20;
  const usual = isUsualTcpOptions(f, from, l.offset + l.headerLen);
  const slot = SLOT_TCP_ACK + (l.depth & 3);
  const ack = l.flags & 0x10 ? l.ack : -1;
  if (!reuse(w, slot, ack, l.window, usual ? 1 : 0, 0, 0)) {
    writeKept(w, slot, ack, l.window, usual ? 1 : 0, 0, 0, () => {
      if (ack >= 0) w.str(", ack ").num(ack);
      w.str(", win ").num(l.window);
      if (usual) w.str(", options [nop,nop,TS val ");
    });
  }
  if (usual) w.num(u32(f, from + 4)).str(" ecr ").num(u32(f, from + 8)).char(93);
  else if (l.headerLen > 20) writeTcpOptions(w, f, from, l.offset + l.headerLen);
  const lenSlot = SLOT_TCP_LENGTH + (l.depth & 3);
  if (!reuse(w, lenSlot, l.payloadLen, 0, 0, 0, 0)) {
    writeKept(w, lenSlot, l.payloadLen, 0, 0, 0, 0, () => w.str(", length ").num(l.payloadLen).str(", "));
  }
  writeChecksum(w, l.checksumState, l.checksum);
}

function writeVxlan(w: AsciiSink, l: VxlanLayer): void {
  w.str("vni ").num(l.vni).str(", flags [").str(l.flags & 0x08 ? "I" : "-").str(l.flags & 0x80 ? "G" : "").str("]");
  if (l.groupPolicy !== undefined) w.str(", group policy ").num(l.groupPolicy);
}

function writeGeneve(w: AsciiSink, l: GeneveLayer): void {
  w.str("vni ").num(l.vni).str(", protocol ");
  if (l.protocol === 0x6558) w.str("Ethernet");
  else writeEtherType(w, l.protocol);
  if (l.options.length) w.str(", ").num(l.options.length).str(" options (").num(l.optionsLen).str(" bytes)");
  if (l.oam) w.str(", OAM");
  if (l.critical) w.str(", critical options");
}

export function writeTime(w: AsciiSink, sec: number, nsec: number): void {
  const s = ((sec % 86400) + 86400) % 86400;
  w.two(Math.floor(s / 3600)).char(58).two(Math.floor((s % 3600) / 60)).char(58).two(s % 60).char(46).six(Math.floor(nsec / 1000));
}

const INDENT = ["  ", "    ", "      ", "        ", "          "];

const KIND_NO: Record<Layer["kind"], number> = { eth: 0, sll: 1, sll2: 2, arp: 3, ipv4: 4, ipv6: 5, icmp: 6, icmp6: 7, udp: 8, tcp: 9, vxlan: 10, geneve: 11, wireguard: 12 };

/**
 * Bulk traffic is packet after packet of the same few flows, and most of each line is the same
 * from one to the next. Rendered pieces are kept per slot with what they were made from and
 * copied while that matches:
 * - whole lines for Ethernet and VXLAN, which are functions of their header bytes alone;
 * - line heads for IPv4, UDP and TCP, up to the first field that changes within a flow (the
 *   IP id, the UDP length, the TCP sequence number), keyed by the numbers they show;
 * - the tunnel line, the IPv4 tail after the id, the TCP ack/window and length pieces.
 * Together they more than halve text mode's formatting time.
 */
interface Rendered { a: number; b: number; c: number; d: number; e: number; header: Uint8Array | undefined; bytes: Uint8Array }
const rendered: (Rendered | undefined)[] = [];
// Slots beyond the per-(kind, depth) ones: pieces of the header line, and line tails per depth.
const SLOT_HEADER_TAIL = 120;
const SLOT_IPV4_TAIL = 124;
const SLOT_TCP_ACK = 128;
const SLOT_TCP_LENGTH = 132;

function slotOf(l: Layer): number {
  return KIND_NO[l.kind] * 8 + l.depth;
}

/** Copies the cached bytes for `slot` if they were made from (a, b, c, d, e); false if not. */
function reuse(w: AsciiSink, slot: number, a: number, b: number, c: number, d: number, e: number): boolean {
  const r = rendered[slot];
  if (r === undefined || r.a !== a || r.b !== b || r.c !== c || r.d !== d || r.e !== e) return false;
  w.bytes(r.bytes);
  return true;
}

/**
 * Writes a piece with `write` and keeps its bytes for `slot`, as made from (a, b, c, d, e) (or
 * from `header`'s bytes). A piece is at most a line: room for 1 KiB first means no flush falls
 * between its start and its end.
 */
function writeKept(w: AsciiSink, slot: number, a: number, b: number, c: number, d: number, e: number, write: () => void, header?: Uint8Array): void {
  w.room(1024);
  const m = w.mark();
  write();
  rendered[slot] = { a, b, c, d, e, header, bytes: w.since(m) };
}

function writeTitle(w: AsciiSink, l: Layer): void {
  w.str(INDENT[l.depth] ?? "  ").str(LAYER_TITLE[l.kind]).char(32).num(l.headerLen).str("B  ");
}

function writeLayerLine(w: AsciiSink, l: Layer, f: Uint8Array): void {
  switch (l.kind) {
    case "eth": case "vxlan": writeWholeLineCached(w, l, f); break;
    case "ipv4": {
      const slot = slotOf(l);
      const c = l.proto | (l.ttl << 8) | (l.headerLen << 16);
      if (!reuse(w, slot, l.src, l.dst, c, 0, 0)) writeKept(w, slot, l.src, l.dst, c, 0, 0, () => { writeTitle(w, l); writeIpv4Head(w, l); });
      writeIpv4Tail(w, l);
      break;
    }
    case "udp": {
      const slot = slotOf(l);
      if (!reuse(w, slot, l.srcPort, l.dstPort, 0, 0, 0)) writeKept(w, slot, l.srcPort, l.dstPort, 0, 0, 0, () => { writeTitle(w, l); writeUdpHead(w, l); });
      writeUdpTail(w, l);
      break;
    }
    case "tcp": {
      const slot = slotOf(l);
      const c = l.flags | (l.headerLen << 16);
      if (!reuse(w, slot, l.srcPort, l.dstPort, c, 0, 0)) writeKept(w, slot, l.srcPort, l.dstPort, c, 0, 0, () => { writeTitle(w, l); writeTcpHead(w, l); });
      writeTcpTail(w, l, f);
      break;
    }
    default:
      writeTitle(w, l);
      writeLayer(w, l, f);
  }
  w.char(10);
}

/** Ethernet and VXLAN: the whole line, reused while the header bytes are the same. */
function writeWholeLineCached(w: AsciiSink, l: EthLayer | VxlanLayer, f: Uint8Array): void {
  const slot = slotOf(l);
  const r = rendered[slot];
  const n = l.headerLen;
  if (r?.header && r.header.length === n) {
    const h = r.header;
    let same = true;
    for (let i = 0; i < n; i++) if (h[i] !== f[l.offset + i]) { same = false; break; }
    if (same) {
      w.bytes(r.bytes);
      return;
    }
  }
  writeKept(w, slot, 0, 0, 0, 0, 0, () => { writeTitle(w, l); writeLayer(w, l, f); }, f.slice(l.offset, l.offset + n));
}

// The tunnel's shape for the header line's cache key: layer kinds/depths and header lengths
// from the outer IP header to the inner one, packed (a tunnel has a handful of layers).
let shapeKinds = 0;
let shapeLens = 0;

function measureShape(d: Dissection, t: Tunnel): void {
  let kinds = 0;
  let lens = 0;
  for (let i = t.outerIp; i < t.innerIp; i++) {
    const l = d.layers[i]!;
    kinds = (kinds * 64 + KIND_NO[l.kind] * 4 + (l.depth & 3)) % 2147483647;
    lens = (lens * 256 + l.headerLen) % 2147483647;
  }
  shapeKinds = kinds;
  shapeLens = lens;
}

/**
 * The tunnel's whole cost on one line: frames, the encapsulation and what it is made of, IP
 * sizes. " vxlan vni 1: outer frame 148 bytes, inner frame 98 bytes, encapsulation 50 bytes
 * (IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14); outer IP 134, inner IP 84". The same sizes
 * come packet after packet in bulk traffic: reused while the numbers and the shape match.
 */
function writeTunnelLine(w: AsciiSink, d: Dissection, t: Tunnel): void {
  measureShape(d, t);
  const kindVni = KIND_NO[t.kind] + 16 * t.vni;
  const frames = t.outerFrameLen * 65536 + t.innerFrameLen;
  const ips = t.outerIpLen * 65536 + t.innerIpLen;
  if (reuse(w, SLOT_HEADER_TAIL, kindVni, frames, ips, shapeKinds, shapeLens)) return;
  writeKept(w, SLOT_HEADER_TAIL, kindVni, frames, ips, shapeKinds, shapeLens, () => writeTunnelText(w, d, t));
}

function writeTunnelText(w: AsciiSink, d: Dissection, t: Tunnel): void {
  w.char(32).str(t.kind).str(" vni ").num(t.vni).str(": outer frame ").num(t.outerFrameLen).str(" bytes, inner frame ").num(t.innerFrameLen)
    .str(" bytes, encapsulation ").num(t.encapBytes).str(" bytes (");
  const outerDepth = d.layers[t.outerIp]!.depth;
  for (let i = t.outerIp; i < t.innerIp; i++) {
    const l = d.layers[i]!;
    if (i > t.outerIp) w.str(" + ");
    if (l.depth > outerDepth) w.str("inner ");
    w.str(LAYER_TITLE[l.kind]).char(32).num(l.headerLen);
  }
  w.str("); outer IP ").num(t.outerIpLen).str(", inner IP ").num(t.innerIpLen);
}

/** The text block of one packet: a header line, one line per layer (indented by depth), notes. */
export function writePacketText(w: AsciiSink, p: Packet, d: Dissection): void {
  const t = d.tunnel;
  w.char(35).num(p.n).char(32);
  writeTime(w, p.tsSec, p.tsNsec);
  const sl = d.sealed;
  if (t) writeTunnelLine(w, d, t);
  else if (sl) w.str(" wireguard: outer frame ").num(p.wireLen).str(" bytes, outer IP ").num(sl.outerIpLen).str(", sealed inner packet ").num(sl.innerPaddedLen)
    .str(" (padded to 16), overhead ").num(sl.overheadBytes).str(" (IP ").num(sl.outerIpLen - sl.innerPaddedLen - 40).str(" + UDP 8 + WireGuard 32); the packet inside is encrypted");
  else w.char(32).num(p.wireLen).str(" bytes");
  if (p.data.length < p.wireLen) w.str(" (").num(p.data.length).str(" of ").num(p.wireLen).str(" captured)");
  w.char(10);
  const layers = d.layers;
  for (let i = 0; i < layers.length; i++) writeLayerLine(w, layers[i]!, d.frame);
  if (d.cut) w.str("  ! cut by the capture's snapshot length inside ").str(d.cut.layer).str(" at offset ").num(d.cut.offset).char(10);
  if (d.malformed) w.str("  ! malformed ").str(d.malformed.layer).str(" at offset ").num(d.malformed.offset).str(": ").str(d.malformed.reason).char(10);
}

export function packetText(p: Packet, d: Dissection): string {
  return sinkToString((w) => writePacketText(w, p, d));
}

/** JSON of one packet (field names are part of gauze's interface: see README, "dissect --json"). */
export function packetJson(p: Packet, d: Dissection): Record<string, unknown> {
  const f = d.frame;
  const layers = d.layers.map((l) => {
    const o: Record<string, unknown> = { layer: l.kind, depth: l.depth, offset: l.offset, headerLen: l.headerLen };
    switch (l.kind) {
      case "eth": o.source = macAt(f, l.offset + 6); o.destination = macAt(f, l.offset); o.etherType = hex(l.etherType, 4); if (l.vlans.length) o.vlans = l.vlans; break;
      case "sll": case "sll2": o.etherType = hex(l.etherType, 4); o.packetType = l.pktType; if (l.kind === "sll2") o.ifindex = l.ifindex; break;
      case "arp": o.op = l.op; o.senderIp = ipv4Text(l.senderIp); o.targetIp = ipv4Text(l.targetIp); o.senderMac = macAt(f, l.senderMacAt); break;
      case "ipv4": Object.assign(o, { source: ipv4Text(l.src), destination: ipv4Text(l.dst), protocol: l.proto, totalLen: l.totalLen, ttl: l.ttl, id: l.id, df: (l.flags & 2) !== 0, mf: (l.flags & 1) !== 0, fragmentOffset: l.fragOffset, headerChecksumOk: l.checksumOk, ...(l.presumedLength ? { presumedLength: true } : {}) }); break;
      case "ipv6": Object.assign(o, { source: ipv6At(f, l.srcAt), destination: ipv6At(f, l.dstAt), nextHeader: l.proto, payloadLen: l.payloadLen, hopLimit: l.hopLimit, flowLabel: l.flowLabel, extHeaders: l.extHeaders, ...(l.presumedLength ? { presumedLength: true } : {}) }); if (l.fragment) o.fragment = l.fragment; break;
      case "icmp": case "icmp6": o.type = l.type; o.code = l.code; if (l.id !== undefined) { o.id = l.id; o.seq = l.seq; } break;
      case "udp": Object.assign(o, { sourcePort: l.srcPort, destinationPort: l.dstPort, length: l.length, checksum: l.checksum, checksumState: l.checksumState }); break;
      case "tcp": Object.assign(o, { sourcePort: l.srcPort, destinationPort: l.dstPort, flags: tcpFlags(l.flags), seq: l.seq, ack: l.ack, window: l.window, payloadLen: l.payloadLen, options: tcpOptionList(f, l.offset + 20, l.offset + l.headerLen), checksum: l.checksum, checksumState: l.checksumState }); break;
      case "vxlan": o.vni = l.vni; o.flags = l.flags; if (l.groupPolicy !== undefined) o.groupPolicy = l.groupPolicy; break;
      case "geneve": Object.assign(o, { vni: l.vni, protocol: hex(l.protocol, 4), optionsLen: l.optionsLen, options: l.options, oam: l.oam, critical: l.critical }); break;
      case "wireguard": Object.assign(o, { type: l.msgType, ...(l.receiver !== undefined ? { receiver: l.receiver } : {}), ...(l.counter !== undefined ? { counter: l.counter } : {}), ...(l.sealedLen !== undefined ? { sealedLen: l.sealedLen } : {}) }); break;
    }
    return o;
  });
  const out: Record<string, unknown> = {
    n: p.n, time: rfc3339Nanos(p.tsSec, p.tsNsec), interface: { index: p.iface }, linkType: p.linkType,
    wireLen: p.wireLen, capturedLen: p.data.length, layers,
  };
  const t = d.tunnel;
  if (t) {
    out.tunnel = {
      protocol: t.kind, vni: t.vni, outerIpLen: t.outerIpLen, innerIpLen: t.innerIpLen, overheadBytes: t.encapBytes,
      outerFrameLen: t.outerFrameLen, innerFrameLen: t.innerFrameLen,
      overheadLayers: d.layers.slice(t.outerIp, t.innerIp).map((l) => ({ layer: l.kind, depth: l.depth, headerLen: l.headerLen })),
    };
  }
  const sl = d.sealed;
  if (sl) out.sealed = { protocol: sl.kind, outerIpLen: sl.outerIpLen, innerPaddedLen: sl.innerPaddedLen, overheadBytes: sl.overheadBytes };
  if (d.cut) out.cut = d.cut;
  if (d.malformed) out.malformed = d.malformed;
  return out;
}
