// The node's flow observer. Every packet on every interface of the node's namespace comes in
// through a packet ring (its headers only); each is keyed by its (inner) addresses, protocol and
// ports and by where it was seen (a pod's veth, the bridge, the overlay device, the underlay),
// and counted. A flow's first packet at a point is an event at once; after that, one event per
// second while packets keep coming, with what they added. Drops come from the kernel's
// kfree_skb tracepoint, which says why but not what or where: a drop is joined to the packet
// this node saw last, just before it, and claimed only if that packet had not left the node.
// Everything is bounded: the flow table, the recent packets, the event ring, each listener's
// queue; what is pushed out is counted and reported in the stream as lost.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { PACKET_OUTGOING, PacketRing, type RingPacket } from "../kernel/packet-ring.ts";
import { DropWatch, type DropEvent } from "../kernel/tracefs.ts";
import { type Rtnl } from "../kernel/netlink/index.ts";
import { type FlowKey, flowKey, isLinkChatter, protocolName, tcpFlagNames } from "../packet/flow-key.ts";
import { type PodRecord } from "../cni/pod-record.ts";

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
  verdict: "forwarded" | "dropped";
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
  /** Link chatter (neighbour discovery, MLD): never a flow. */
  chatter?: boolean;
}

interface FlowState {
  event: FlowEvent;
  packets: number;
  bytes: number;
  lastSeen: number;
  emitted: number;
}

export interface ObserverStats {
  packets: number;
  flows: number;
  events: number;
  /** Packets the kernel could not put in the ring (it was full). */
  ringDrops: number;
  /** Flows pushed out of the full table, events pushed out of the ring or a listener's queue. */
  lost: number;
  dropsSeen: number;
  dropsClaimed: number;
  /** Why drops are not reported, when tracefs is not usable. */
  dropsUnavailable?: string;
}

export interface ObserverOptions {
  node: string;
  /** The node's underlay interface (to-network / from-network). */
  underlay: string;
  bridge: string;
  /** Where the plugin leaves its pod records. */
  podRecords: string;
  vxlanPorts: number[];
  log: Logger;
  maxFlows?: number;
  eventRing?: number;
  sightings?: number;
}

type Listener = { push(e: FlowEvent | { lost: number }): void };

export class FlowObserver {
  private ring?: PacketRing;
  private drops?: DropWatch;
  private readonly flows = new Map<string, FlowState>();
  private readonly events: FlowEvent[] = [];
  private eventStart = 0;
  private readonly sightings: (Sighting | undefined)[];
  private sightingAt = 0;
  private readonly listeners = new Set<Listener>();
  private readonly names = new Map<number, string>();
  private pods = new Map<string, string>();
  private pendingDrops: DropEvent[] = [];
  private timers: ReturnType<typeof setInterval>[] = [];
  private lastPodsRead = 0;
  private readonly vxlanPorts: Set<number>;
  readonly stats: ObserverStats = { packets: 0, flows: 0, events: 0, ringDrops: 0, lost: 0, dropsSeen: 0, dropsClaimed: 0 };

  constructor(private readonly o: ObserverOptions, private readonly nl: Rtnl) {
    this.sightings = new Array<Sighting | undefined>(o.sightings ?? 16384);
    this.vxlanPorts = new Set(o.vxlanPorts);
  }

  start(): void {
    this.ring = PacketRing.open();
    try {
      this.drops = DropWatch.open(`gauze-${this.o.node}-${process.pid}`.slice(0, 60));
    } catch (e) {
      this.stats.dropsUnavailable = (e as Error).message;
      this.o.log.warn({ err: this.stats.dropsUnavailable }, "flows without drops: the kernel's drop events are not readable");
    }
    this.refreshNames();
    this.timers.push(setInterval(() => this.tick(), 50), setInterval(() => this.flush(), 1000));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.ring?.close();
    this.drops?.close();
  }

  private refreshNames(): void {
    this.names.clear();
    for (const l of this.nl.links()) this.names.set(l.index, l.name);
  }

  private readPods(): void {
    const out = new Map<string, string>();
    let files: string[] = [];
    try {
      files = readdirSync(this.o.podRecords).filter((f) => f.endsWith(".json"));
    } catch {
      // no pods yet
    }
    for (const f of files) {
      try {
        const r = JSON.parse(readFileSync(join(this.o.podRecords, f), "utf8")) as PodRecord;
        const name = r.pod ? `${r.namespace ?? "default"}/${r.pod}` : `container ${r.containerId.slice(0, 12)}`;
        for (const ip of r.ips ?? []) out.set(ip.split("/")[0]!, name);
      } catch {
        // a record being written, or not ours: skipped
      }
    }
    this.pods = out;
    this.lastPodsRead = Date.now();
  }

  /** This node's pods by address (for the relay: names of pods elsewhere come from their node). */
  podNames(): Record<string, string> {
    if (Date.now() - this.lastPodsRead > 2000) this.readPods();
    return Object.fromEntries(this.pods);
  }

  private point(ifindex: number, egress: boolean): ObservationPoint {
    const name = this.names.get(ifindex) ?? "";
    if (name === this.o.underlay) return egress ? "to-network" : "from-network";
    if (name === this.o.bridge) return egress ? "to-bridge" : "from-bridge";
    if (/^gauze6?\.\d+$/.test(name) || name === "gauze-wg") return egress ? "to-overlay" : "from-overlay";
    if (name.startsWith("gz")) return egress ? "to-pod" : "from-pod";
    return "host";
  }

  private tick(): void {
    if (!this.ring) return;
    this.ring.drain((p) => this.onPacket(p));
    if (this.drops) {
      try {
        this.pendingDrops.push(...this.drops.read());
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, "reading drops failed");
      }
      this.attributeDrops();
    }
  }

  private onPacket(p: RingPacket): void {
    if (p.ifindex === 1) return; // loopback
    const key = flowKey(p.data, this.vxlanPorts);
    if (!key) return;
    this.stats.packets++;
    if (!this.names.has(p.ifindex)) this.refreshNames();
    const egress = p.pktType === PACKET_OUTGOING;
    const point = this.point(p.ifindex, egress);
    const time = Number(p.tsNs / 1000n) / 1000;
    // Chatter is kept as a sighting (a drop of it must not be pinned on a flow nearby) but makes no flow.
    const chatter = isLinkChatter(key);
    this.sightings[this.sightingAt] = { time, ifindex: p.ifindex, point, egress, len: p.len, key, ...(chatter ? { chatter } : {}) };
    this.sightingAt = (this.sightingAt + 1) % this.sightings.length;
    if (chatter) return;
    const id = `${p.ifindex}|${egress ? 1 : 0}|${key.proto}|${key.src}|${key.srcPort}|${key.dst}|${key.dstPort}|${key.icmpType ?? ""}`;
    let f = this.flows.get(id);
    if (!f) {
      if (this.flows.size >= (this.o.maxFlows ?? 20000)) this.evictOldest();
      f = { event: this.toEvent(key, time, p.ifindex, point, "forwarded"), packets: 0, bytes: 0, lastSeen: time, emitted: 0 };
      this.flows.set(id, f);
      this.stats.flows = this.flows.size;
      f.event.packets = 1;
      f.event.bytes = p.len;
      this.emit({ ...f.event });
      f.emitted = time;
      f.lastSeen = time;
      return;
    }
    f.packets++;
    f.bytes += p.len;
    f.lastSeen = time;
    f.event.ipLen = key.ipLen;
    if (key.tunnel) f.event.tunnel = tunnelOf(key);
    if (key.tcpFlags !== undefined) f.event.tcpFlags = tcpFlagNames(key.tcpFlags);
    if (key.icmpSeq !== undefined && f.event.icmp) f.event.icmp.seq = key.icmpSeq;
  }

  private evictOldest(): void {
    let oldest: string | undefined;
    let t = Infinity;
    for (const [k, f] of this.flows) if (f.lastSeen < t) { t = f.lastSeen; oldest = k; }
    if (oldest) this.flows.delete(oldest);
    this.stats.lost++;
  }

  private toEvent(key: FlowKey, time: number, ifindex: number, point: ObservationPoint, verdict: FlowEvent["verdict"]): FlowEvent {
    if (Date.now() - this.lastPodsRead > 2000) this.readPods();
    const ep = (ip: string, port: number): Endpoint => ({ ip, ...(port ? { port } : {}), ...(this.pods.has(ip) ? { pod: this.pods.get(ip)! } : {}) });
    return {
      time, node: this.o.node, source: ep(key.src, key.srcPort), destination: ep(key.dst, key.dstPort), protocol: protocolName(key.proto),
      ...(key.icmpType !== undefined ? { icmp: { type: key.icmpType, code: key.icmpCode ?? 0, ...(key.icmpId !== undefined ? { id: key.icmpId, seq: key.icmpSeq! } : {}) } } : {}),
      ...(key.tcpFlags !== undefined ? { tcpFlags: tcpFlagNames(key.tcpFlags) } : {}),
      verdict, observationPoint: point, interface: { index: ifindex, name: this.names.get(ifindex) ?? `if${ifindex}` },
      packets: 0, bytes: 0, ipLen: key.ipLen, ...(key.tunnel ? { tunnel: tunnelOf(key) } : {}),
    };
  }

  /** Flows with packets since their last event: one event each; flows idle for 30 s are forgotten. */
  private flush(): void {
    const now = Date.now();
    for (const [id, f] of this.flows) {
      if (f.packets > 0) {
        this.emit({ ...f.event, time: f.lastSeen, packets: f.packets, bytes: f.bytes });
        f.packets = 0;
        f.bytes = 0;
        f.emitted = f.lastSeen;
      } else if (now - f.lastSeen > 30_000) {
        this.flows.delete(id);
      }
    }
    this.stats.flows = this.flows.size;
    const r = this.ring?.stats();
    if (r?.drops) {
      this.stats.ringDrops += r.drops;
      this.stats.lost += r.drops;
      for (const l of this.listeners) l.push({ lost: r.drops });
    }
  }

  /**
   * Drops are joined to sightings once the ring has caught up with them (its blocks are handed
   * over up to 20 ms late): the packet this node saw last before the drop, of the same protocol.
   * A packet whose last sighting here was leaving the node (to the network) died elsewhere.
   */
  private attributeDrops(): void {
    const now = Date.now();
    const keep: DropEvent[] = [];
    for (const d of this.pendingDrops) {
      const t = Number(d.tsNs / 1000n) / 1000;
      if (now - t < 80) { keep.push(d); continue; }
      this.stats.dropsSeen++;
      const s = this.lastSightingBefore(t, d.protocol === 34525 ? 6 : d.protocol === 2048 ? 4 : 0);
      // A raw socket took the echo reply; the ping-socket handler then frees its copy: not a drop.
      if (d.reason === "NO_SOCKET" && d.location.startsWith("ping_rcv")) continue;
      if (!s || s.point === "to-network" || s.chatter || !plausible(d, s)) continue;
      this.stats.dropsClaimed++;
      this.emit({ ...this.toEvent(s.key, t, s.ifindex, s.point, "dropped"), packets: 1, bytes: s.len, dropReason: d.reason, dropLocation: d.location });
    }
    this.pendingDrops = keep.slice(-1000);
  }

  private lastSightingBefore(t: number, family: 0 | 4 | 6): Sighting | undefined {
    const n = this.sightings.length;
    for (let i = 1; i <= n; i++) {
      const s = this.sightings[(this.sightingAt - i + n) % n];
      if (!s) return undefined;
      if (s.time > t + 1) continue;
      if (s.time < t - 20) return undefined;
      if (family === 0 || (s.key.tunnel ? true : s.key.family === family)) return s;
    }
    return undefined;
  }

  private emit(e: FlowEvent): void {
    const size = this.o.eventRing ?? 8192;
    if (this.events.length < size) this.events.push(e);
    else {
      this.events[this.eventStart] = e;
      this.eventStart = (this.eventStart + 1) % size;
    }
    this.stats.events++;
    for (const l of this.listeners) l.push(e);
  }

  /** The last `n` events, oldest first, optionally only those after `since` (ms). */
  recent(n: number, since = 0): FlowEvent[] {
    const all = [...this.events.slice(this.eventStart), ...this.events.slice(0, this.eventStart)];
    return all.filter((e) => e.time > since).slice(-n);
  }

  /** Sightings matching a packet's identity (trace): by addresses, protocol and ports or ICMP id. */
  sightingsOf(m: { src?: string; dst?: string; proto?: number; srcPort?: number; dstPort?: number; icmpId?: number; since?: number }): Sighting[] {
    const out: Sighting[] = [];
    for (const s of this.sightings) {
      if (!s || (m.since !== undefined && s.time < m.since)) continue;
      const k = s.key;
      if (m.proto !== undefined && k.proto !== m.proto) continue;
      if (m.icmpId !== undefined && k.icmpId !== m.icmpId) continue;
      if (m.srcPort !== undefined && k.srcPort !== m.srcPort && k.dstPort !== m.srcPort) continue;
      const pair = [k.src, k.dst];
      if (m.src !== undefined && !pair.includes(m.src)) continue;
      if (m.dst !== undefined && !pair.includes(m.dst)) continue;
      out.push(s);
    }
    return out.sort((a, b) => a.time - b.time);
  }

  /** A live listener; its queue holds at most `max` events, and what falls out is reported as lost. */
  listen(send: (line: string) => boolean, max = 2000): () => void {
    let queue: (FlowEvent | { lost: number })[] = [];
    let lost = 0;
    let scheduled = false;
    const flush = () => {
      scheduled = false;
      if (lost) { queue.unshift({ lost }); lost = 0; }
      const batch = queue;
      queue = [];
      for (const e of batch) send(JSON.stringify(e) + "\n");
    };
    const l: Listener = {
      push: (e) => {
        if (queue.length >= max) { lost++; this.stats.lost++; return; }
        queue.push(e);
        if (!scheduled) { scheduled = true; setImmediate(flush); }
      },
    };
    this.listeners.add(l);
    return () => { this.listeners.delete(l); };
  }
}

/**
 * Whether a drop can have happened to a packet last seen at this point: a tunnel's transmit
 * drop follows the packet going to the overlay device; a VXLAN receive drop, one arriving from
 * the network; a forwarding or filtering drop, one arriving at the node. (On one host, as in the
 * lab, every node's agent sees every drop: this keeps a node from claiming one it did not have.)
 */
export function plausible(d: { reason: string; location: string }, s: { point: ObservationPoint; egress: boolean }): boolean {
  if (/^(NO_TX_TARGET|TUNNEL_TXINFO|VXLAN_NO_REMOTE)$/.test(d.reason) || d.location.startsWith("vxlan_xmit")) return s.point === "to-overlay";
  if (/^VXLAN_|^MAC_INVALID_SOURCE$|^IP_TUNNEL_ECN$/.test(d.reason) || d.location.startsWith("vxlan_rcv")) return s.point === "from-network";
  if (/^(NETFILTER_DROP|IP_INNOROUTES|IP_INADDRERRORS|IP_RPFILTER|OTHERHOST|IP_INHDR|IP_CSUM|PKT_TOO_BIG|IP_INVALID_SOURCE|IP_LOCAL_SOURCE)$/.test(d.reason)) return !s.egress;
  return true;
}

function tunnelOf(k: FlowKey): FlowEvent["tunnel"] {
  const t = k.tunnel!;
  return { protocol: "vxlan", vni: t.vni, outer: { source: t.outerSrc, destination: t.outerDst, sourcePort: t.outerSrcPort, destinationPort: t.outerDstPort }, outerIpLen: t.outerIpLen, overheadBytes: t.overhead };
}
