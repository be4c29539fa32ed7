// --summary: one row per flow with packets and bytes; a tunnel flow (outer src/dst, tunnel, VNI,
// inner src/dst, protocol) also says what the encapsulation cost; totals for the capture.
// WireGuard's flows are its node pairs: the inner packet is sealed, so its addresses are unknown
// and its size is the sealed size (the packet padded to 16 bytes). A flow that is not tunnelled
// (pod to pod on one node, ARP, the agent's own traffic) is a row too, tunnel "none": its
// addresses in the outer columns, "-" for the inner ones, its IP bytes as both outer and inner
// (nothing was spent on encapsulation); a frame without IP (ARP) counts its wire length.
import type { Dissection, Ipv4Layer, Ipv6Layer } from "../packet/decode/layers.ts";
import { count } from "../util/text.ts";
import { ipv4Text, ipv6At } from "./addr.ts";

export interface FlowRow {
  outerSource: string;
  outerDestination: string;
  /** The tunnel's protocol: vxlan, geneve, wireguard, or none. */
  tunnelProtocol: string;
  vni: number;
  innerSource: string;
  innerDestination: string;
  innerProtocol: string;
  packets: number;
  outerBytes: number;
  innerBytes: number;
  overheadBytes: number;
  overheadPercent: number;
}

export interface SummaryReport {
  flows: FlowRow[];
  totals: {
    packets: number;
    wireBytes: number;
    tunnelPackets: number;
    /** Packets that were not tunnelled (rows with tunnel "none"). */
    barePackets: number;
    outerBytes: number;
    innerBytes: number;
    overheadBytes: number;
    /** Encapsulation bytes as a percentage of every byte in the capture (tunnelled or not). */
    overheadSharePercent: number;
    malformedPackets: number;
    cutPackets: number;
    /** The smallest flows, folded together once there were more than the summary keeps (counted, not listed). */
    otherFlows: { flows: number; packets: number; outerBytes: number; innerBytes: number };
  };
}

/** Flows kept at most; past that the smaller half is folded into one "other" row. */
export const MAX_FLOWS = 100_000;

const PROTO: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6" };

function addr(l: Ipv4Layer | Ipv6Layer, f: Uint8Array, which: "src" | "dst"): string {
  if (l.kind === "ipv4") return ipv4Text(which === "src" ? l.src : l.dst);
  return ipv6At(f, which === "src" ? l.srcAt : l.dstAt);
}

interface Acc { key: Omit<FlowRow, "packets" | "outerBytes" | "innerBytes" | "overheadBytes" | "overheadPercent">; packets: number; outer: number; inner: number }

export class Summary {
  private flows = new Map<string, Acc>();
  private other = { flows: 0, packets: 0, outer: 0, inner: 0 };

  /** `maxFlows` bounds memory on a capture with millions of flows: the largest flows are kept. */
  constructor(private readonly maxFlows = MAX_FLOWS) {}

  /** Folds the smaller half of the flows into `other`. */
  private shrink(): void {
    const all = [...this.flows.entries()].sort((a, b) => a[1].outer - b[1].outer);
    for (const [k, a] of all.slice(0, Math.ceil(all.length / 2))) {
      this.other.flows++;
      this.other.packets += a.packets;
      this.other.outer += a.outer;
      this.other.inner += a.inner;
      this.flows.delete(k);
    }
    this.last = undefined;
  }
  private packets = 0;
  private wire = 0;
  /** Totals over tunnelled packets, kept apart from the rows so that folding rows never mixes them. */
  private tun = { packets: 0, outer: 0, inner: 0 };
  private malformed = 0;
  private cut = 0;

  add(d: Dissection): void {
    this.packets++;
    this.wire += d.wireLen;
    if (d.malformed) this.malformed++;
    if (d.cut) this.cut++;
    const t = d.tunnel;
    if (!t) {
      if (d.sealed) this.addSealed(d);
      else this.addBare(d);
      return;
    }
    this.tun.packets++;
    this.tun.outer += t.outerIpLen;
    this.tun.inner += t.innerIpLen;
    const o = d.layers[t.outerIp] as Ipv4Layer | Ipv6Layer;
    const n = d.layers[t.innerIp] as Ipv4Layer | Ipv6Layer;
    // Bulk traffic is long runs of one flow: compare with the last IPv4 flow before building a key.
    const last = this.last;
    if (last && o.kind === "ipv4" && n.kind === "ipv4" && last.os === o.src && last.od === o.dst && last.vni === t.vni &&
        last.is === n.src && last.id === n.dst && last.p === n.proto && last.kind === t.kind) {
      last.acc.packets++;
      last.acc.outer += t.outerIpLen;
      last.acc.inner += t.innerIpLen;
      return;
    }
    // Numbers make the key for IPv4 (no text per packet); IPv6 needs its text anyway.
    const k = o.kind === "ipv4" && n.kind === "ipv4"
      ? `${o.src},${o.dst},${t.kind},${t.vni},${n.src},${n.dst},${n.proto}`
      : `${addr(o, d.frame, "src")},${addr(o, d.frame, "dst")},${t.kind},${t.vni},${addr(n, d.frame, "src")},${addr(n, d.frame, "dst")},${n.proto}`;
    let acc = this.flows.get(k);
    if (!acc) {
      acc = {
        key: { outerSource: addr(o, d.frame, "src"), outerDestination: addr(o, d.frame, "dst"), tunnelProtocol: t.kind, vni: t.vni, innerSource: addr(n, d.frame, "src"), innerDestination: addr(n, d.frame, "dst"), innerProtocol: PROTO[n.proto] ?? String(n.proto) },
        packets: 0, outer: 0, inner: 0,
      };
      if (this.flows.size >= this.maxFlows) this.shrink();
      this.flows.set(k, acc);
    }
    acc.packets++;
    acc.outer += t.outerIpLen;
    acc.inner += t.innerIpLen;
    this.last = o.kind === "ipv4" && n.kind === "ipv4" ? { os: o.src, od: o.dst, vni: t.vni, is: n.src, id: n.dst, p: n.proto, kind: t.kind, acc } : undefined;
  }

  /** A WireGuard transport message: one row per outer address pair. */
  private addSealed(d: Dissection): void {
    const s = d.sealed!;
    let i = d.layers.findIndex((l) => l.kind === "wireguard") - 1;
    while (i >= 0 && d.layers[i]!.kind !== "ipv4" && d.layers[i]!.kind !== "ipv6") i--;
    if (i < 0) return;
    const o = d.layers[i] as Ipv4Layer | Ipv6Layer;
    const src = addr(o, d.frame, "src"), dst = addr(o, d.frame, "dst");
    const k = `wireguard,${src},${dst}`;
    let acc = this.flows.get(k);
    if (!acc) {
      acc = { key: { outerSource: src, outerDestination: dst, tunnelProtocol: "wireguard", vni: 0, innerSource: "(sealed)", innerDestination: "(sealed)", innerProtocol: "-" }, packets: 0, outer: 0, inner: 0 };
      if (this.flows.size >= this.maxFlows) this.shrink();
      this.flows.set(k, acc);
    }
    acc.packets++;
    acc.outer += s.outerIpLen;
    acc.inner += s.innerPaddedLen;
    this.tun.packets++;
    this.tun.outer += s.outerIpLen;
    this.tun.inner += s.innerPaddedLen;
    this.last = undefined;
  }

  /** A packet outside any tunnel: one row per address pair and protocol (per link protocol without IP). */
  private addBare(d: Dissection): void {
    this.last = undefined;
    this.bare++;
    const ip = d.layers.find((l): l is Ipv4Layer | Ipv6Layer => l.kind === "ipv4" || l.kind === "ipv6");
    let k: string, key: Acc["key"], bytes: number;
    if (ip) {
      const src = addr(ip, d.frame, "src"), dst = addr(ip, d.frame, "dst");
      k = `none,${src},${dst},${ip.proto}`;
      key = { outerSource: src, outerDestination: dst, tunnelProtocol: "none", vni: 0, innerSource: "-", innerDestination: "-", innerProtocol: PROTO[ip.proto] ?? String(ip.proto) };
      bytes = ip.kind === "ipv4" ? ip.totalLen : 40 + ip.payloadLen;
    } else {
      const link = d.layers.find((l) => l.kind === "arp")?.kind ?? linkProto(d);
      k = `none,${link}`;
      key = { outerSource: "-", outerDestination: "-", tunnelProtocol: "none", vni: 0, innerSource: "-", innerDestination: "-", innerProtocol: link };
      bytes = d.wireLen;
    }
    let acc = this.flows.get(k);
    if (!acc) {
      acc = { key, packets: 0, outer: 0, inner: 0 };
      if (this.flows.size >= this.maxFlows) this.shrink();
      this.flows.set(k, acc);
    }
    acc.packets++;
    acc.outer += bytes;
    acc.inner += bytes;
  }
  private bare = 0;

  private last: { os: number; od: number; vni: number; is: number; id: number; p: number; kind: string; acc: Acc } | undefined;

  report(): SummaryReport {
    const flows = [...this.flows.values()].map((a) => ({
      ...a.key, packets: a.packets, outerBytes: a.outer, innerBytes: a.inner, overheadBytes: a.outer - a.inner,
      overheadPercent: a.outer ? round2((100 * (a.outer - a.inner)) / a.outer) : 0,
    })).sort((x, y) => y.outerBytes - x.outerBytes);
    const o = this.other, t = this.tun;
    const overhead = t.outer - t.inner;
    return {
      flows,
      totals: {
        packets: this.packets, wireBytes: this.wire, tunnelPackets: t.packets, barePackets: this.bare,
        outerBytes: t.outer, innerBytes: t.inner, overheadBytes: overhead,
        overheadSharePercent: this.wire ? round2((100 * overhead) / this.wire) : 0,
        malformedPackets: this.malformed, cutPackets: this.cut,
        otherFlows: { flows: o.flows, packets: o.packets, outerBytes: o.outer, innerBytes: o.inner },
      },
    };
  }
}

/** A frame without IP or ARP: its EtherType, as tcpdump names the unknown ones. */
function linkProto(d: Dissection): string {
  const l = d.layers[0];
  if (l && (l.kind === "eth" || l.kind === "sll" || l.kind === "sll2")) return `ethertype 0x${l.etherType.toString(16).padStart(4, "0")}`;
  return d.malformed || d.cut ? "unreadable" : "other";
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export function summaryText(r: SummaryReport): string {
  const head = ["outer src", "outer dst", "tunnel", "vni", "inner src", "inner dst", "proto", "packets", "outer B", "inner B", "overhead B", "overhead %"];
  const rows = r.flows.map((f) => [f.outerSource, f.outerDestination, f.tunnelProtocol, f.tunnelProtocol === "wireguard" || f.tunnelProtocol === "none" ? "-" : String(f.vni), f.innerSource, f.innerDestination, f.innerProtocol, String(f.packets), String(f.outerBytes), String(f.innerBytes), String(f.overheadBytes), f.overheadPercent.toFixed(2)]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i >= 7 || i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const t = r.totals;
  return [
    line(head),
    ...rows.map(line),
    ...(t.otherFlows.flows ? [`... and ${count(t.otherFlows.flows, "smaller flow")}, not listed: ${count(t.otherFlows.packets, "packet")}, outer ${t.otherFlows.outerBytes} B, inner ${t.otherFlows.innerBytes} B`] : []),
    "",
    `totals: ${count(t.packets, "packet")}, ${count(t.wireBytes, "byte")} on the wire; ${t.tunnelPackets} tunnelled: outer ${t.outerBytes} B, inner ${t.innerBytes} B, encapsulation ${t.overheadBytes} B; ${t.barePackets} not tunnelled`,
    `encapsulation is ${t.overheadSharePercent.toFixed(2)}% of all bytes in this capture${t.malformedPackets ? `; ${count(t.malformedPackets, "malformed packet")}` : ""}${t.cutPackets ? `; ${t.cutPackets} cut by the snaplen` : ""}`,
    "",
  ].join("\n");
}
