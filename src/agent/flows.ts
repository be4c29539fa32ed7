// The node's flow observer. Every packet on every interface of the node's namespace comes in
// through a packet ring (its headers only); each is keyed by its (inner) addresses, protocol and
// ports and by where it was seen (a pod's veth, the bridge, the overlay device, the underlay),
// and counted. A flow's first packet at a point is an event at once; after that, one event per
// second while packets keep coming, with what they added. Drops come from the kernel's
// kfree_skb tracepoint, which says why but not what or where: a drop is joined to the packet
// this node saw last, just before it, and claimed only if that packet had not left the node.
// Everything is bounded, in memory and in work, whatever traffic a pod sends: the flow table
// (full: the least recently active flow goes, in O(1)), new flows per second (past the cap a
// packet of an unknown flow is counted, not tracked), the time one read of the ring may take
// (the rest waits in the ring; what the kernel cannot fit there is counted as lost), the recent
// packets, the event ring, each listener's queue. What is pushed out is counted and reported in
// the stream as lost.
// On the eBPF path (bpf: the taps observing.ts opened) the kernel does the per-packet work: a tc
// program on every link aggregates flows and sends an event only when one is new, shows a new
// TCP flag, ends or has gone a second unreported; those events become the same flow events and
// sightings, and drops come with their device and namespace (bpf-flows.ts), so none is guessed.
import type { Logger } from "pino";
import { statSync } from "node:fs";
import { PACKET_OUTGOING, PacketRing, type RingPacket } from "../kernel/packet-ring.ts";
import { DropWatch, type DropEvent } from "../kernel/tracefs.ts";
import { type Rtnl } from "../kernel/netlink/index.ts";
import { type FlowKey, flowKey, isLinkChatter, protocolName, tcpFlagNames } from "../packet/flow-key.ts";
import { fastFields, pointHash } from "../packet/flow-hash.ts";
import { type PacketView, viewFrame } from "../packet/view.ts";
import { readPodRecords } from "../node/pod-record.ts";
import type { Endpoint, FlowEvent, ObservationPoint, Sighting, SightingMatch } from "./flow-types.ts";
import { sightingMatches } from "./flow-types.ts";
import { plausible } from "./drop-attribution.ts";
import type { BpfFlowTap, FlowKey as TapKey, FlowTapEvent } from "../kernel/bpf/observer.ts";
import { type BpfDropTap, type DropTapEvent, dropReasonNames } from "../kernel/bpf/drops.ts";
import { isEndpointReason } from "../kernel/tracefs.ts";
import { monotonicToRealtime } from "../kernel/bpf/clock.ts";
import type { PodRecord } from "../node/pod-record.ts";
import { dropFrame, netnsInode, tapEventKey, tapFlowId, tapKernelKey, tapWireLen, transmitDrop } from "./bpf-flows.ts";
import { NewFlowBudget } from "./new-flow-budget.ts";

/** The eBPF path's flow state: the event it was first shown with, and what userspace reported that the kernel has not. */
interface TapFlow {
  event: FlowEvent;
  kernelKey?: TapKey;
  lastEvent: number;
  /** Packets and bytes userspace reported from the kernel's table since the kernel's last event (its next one includes them again). */
  creditPackets: number;
  creditBytes: number;
  /** The table was read once since the last event (a quiet flow's tail is reported once). */
  tailRead: boolean;
  ipLen: number;
  /** ICMP echo: the last sequence number shown (a tail read adds its packets: a ping's sequence counts them). */
  seq?: number;
}

/** The taps of the eBPF path: flows on every link, drops with their namespace. */
export interface BpfTaps {
  flows: BpfFlowTap;
  drops: BpfDropTap;
}

interface FlowState {
  event: FlowEvent;
  packets: number;
  bytes: number;
  lastSeen: number;
  /** When the flow last moved to the back of the table's order (the order eviction reads). */
  touched: number;
  /** The last packet's IP length; TCP flags seen since the last event; the last ICMP sequence. */
  ipLen: number;
  flags: number;
  seq: number;
}

export interface ObserverStats {
  packets: number;
  flows: number;
  events: number;
  /** Packets the kernel could not put in the ring (it was full). */
  ringDrops: number;
  /** Flows pushed out of the full table, events pushed out of the ring or a listener's queue, flows not tracked under overload. */
  lost: number;
  /** Of `lost`: packets of new flows not tracked because more new flows came than the cap allows. */
  shed: number;
  /** Of `lost`: drop events not attributed because more came than the cap allows. */
  dropsShed: number;
  dropsSeen: number;
  dropsClaimed: number;
  /** 1 in this many TCP bulk segments is read (1: every packet). */
  sampling: number;
  /** Why drops are not reported, when tracefs is not usable. */
  dropsUnavailable?: string;
  /** What the node observes with: tc programs and kfree_skb in eBPF, or the packet ring and tracefs. */
  observer?: "ebpf" | "ring";
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
  /** The node's NetworkPolicy, asked about dropped packets and new flows at its pods (policy.ts: judge). */
  judge?: (src: string, dst: string, proto: number, dstPort: number) => { verdict: "denied" | "audit" | "allowed"; policy?: string; reason: string } | undefined;
  /** Called for each drop this node claims, and with the counters every second (the agent's metrics). */
  onDrop?: (reason: string, point: ObservationPoint) => void;
  onStats?: (s: ObserverStats) => void;
  maxFlows?: number;
  /** New flows tracked per second at most (past it: counted as lost, not tracked). */
  maxNewFlowsPerSecond?: number;
  /** Milliseconds one read of the ring may take before the event loop gets its turn. */
  tickBudgetMs?: number;
  eventRing?: number;
  sightings?: number;
  /** Observe through eBPF instead of the packet ring and tracefs (the observer owns the taps from start() on). */
  bpf?: BpfTaps;
}

/** Drop events attributed per tick (20 a second): a flood to closed ports cannot make drops the agent's main work. */
const MAX_DROPS_PER_TICK = 200;
/** Dropped-flow events a second at most (every claimed drop is still counted in the metrics). */
const MAX_DROP_EVENTS_PER_SECOND = 500;

/** Packets read per second above which the node samples its TCP bulk. */
const SAMPLE_ABOVE = 20_000;

const POINTS: readonly ObservationPoint[] = ["from-pod", "to-pod", "from-bridge", "to-bridge", "to-overlay", "from-overlay", "to-network", "from-network", "host"];

/** Bytes of each sighting's frame kept for the packet view: a VXLAN-wrapped TCP header fits. */
const FRAME_BYTES = 192;

/** A live stream's destination: where its lines go, and how many bytes are still waiting to be sent. */
export interface StreamSink {
  write(text: string): void;
  backlog(): number;
}

type Listener = { push(line: string): void; lost(n: number): void };

export class FlowObserver {
  private ring?: PacketRing;
  private drops?: DropWatch;
  private readonly flows = new Map<number, FlowState>();
  private readonly events: FlowEvent[] = [];
  private eventStart = 0;
  /**
   * The last packets seen, as columns in preallocated arrays (no object per packet): time,
   * interface, direction and point, length, and the frame's first FRAME_BYTES. A sighting's flow
   * fields are read from its frame only when asked for (trace, drops, the packet view).
   */
  private readonly sTime: Float64Array;
  private readonly sIf: Int32Array;
  private readonly sLen: Uint32Array;
  private readonly sPoint: Uint8Array;
  private readonly sSnap: Uint16Array;
  /** 1 once a drop was pinned on the sighting: one packet at one point dies once. */
  private readonly sClaimed: Uint8Array;
  private readonly frames: Uint8Array;
  private sightingAt = 0;
  private sightingCount = 0;
  /** Observation point codes of each interface, received and sent (POINTS indexes). */
  private readonly pointCodes = new Map<number, [number, number]>();
  private readonly listeners = new Set<Listener>();
  private readonly names = new Map<number, string>();
  private pods = new Map<string, string>();
  private pendingDrops: DropEvent[] = [];
  private timers: ReturnType<typeof setInterval>[] = [];
  private lastPodsRead = 0;
  private readonly vxlanPorts: Set<number>;
  readonly stats: ObserverStats = { packets: 0, flows: 0, events: 0, ringDrops: 0, lost: 0, shed: 0, dropsShed: 0, dropsSeen: 0, dropsClaimed: 0, sampling: 1 };
  /** New flows taken on in the current second, in all and by source (the overload cap). */
  private readonly newFlows: NewFlowBudget;
  private dropEventsThisSecond = 0;
  private ticking?: ReturnType<typeof setImmediate>;
  /** Packets read in the current second: TCP bulk (subject to sampling) and the rest. */
  private bulkThisSecond = 0;
  private otherThisSecond = 0;
  /** eBPF path: flows by the kernel's key; the namespaces this node's drops may happen in (inode: a pod's record, or none for the node's own). */
  private readonly tapFlows = new Map<string, TapFlow>();
  private nsInodes = new Map<number, PodRecord | undefined>();
  /** eBPF: the 5 ms read of the ring while anyone follows live. */
  private fastPoll?: ReturnType<typeof setInterval>;
  /** shed + dropsShed as last told to the live readers. */
  private shedTold = 0;
  private kernelLost = 0;

  constructor(private readonly o: ObserverOptions, private readonly nl: Rtnl) {
    this.newFlows = new NewFlowBudget(o.maxNewFlowsPerSecond ?? 2000);
    const n = o.sightings ?? 16384;
    this.sTime = new Float64Array(n);
    this.sIf = new Int32Array(n);
    this.sLen = new Uint32Array(n);
    this.sPoint = new Uint8Array(n);
    this.sSnap = new Uint16Array(n);
    this.sClaimed = new Uint8Array(n);
    this.frames = new Uint8Array(n * FRAME_BYTES);
    this.vxlanPorts = new Set(o.vxlanPorts);
  }

  start(): void {
    if (this.o.bpf) return this.startBpf(this.o.bpf);
    this.stats.observer = "ring";
    this.ring = PacketRing.open();
    try {
      // An earlier agent of this node that was killed outright left its instance behind.
      const alive = (name: string) => { try { process.kill(Number(name.slice(name.lastIndexOf("-") + 1)), 0); return true; } catch { return false; } };
      DropWatch.removeStale(`gauze-${this.o.node}-`, alive);
      this.drops = DropWatch.open(`gauze-${this.o.node}-${process.pid}`);
    } catch (e) {
      this.stats.dropsUnavailable = (e as Error).message;
      this.o.log.warn({ err: this.stats.dropsUnavailable }, "flows without drops: the kernel's drop events are not readable");
    }
    // The pods of this node are known before the first packet: a restarted agent names them at once.
    this.readPods();
    this.timers.push(setInterval(() => this.tick(), 50), setInterval(() => this.flush(), 1000));
  }

  /**
   * Stops reading. The eBPF path's programs stay attached and its flow table pinned (keepPins),
   * for the next agent to adopt, unless told otherwise (uninstall).
   */
  stop(o: { keepPins?: boolean } = { keepPins: true }): void {
    for (const t of this.timers) clearInterval(t);
    if (this.fastPoll) clearInterval(this.fastPoll);
    if (this.ticking) clearImmediate(this.ticking);
    this.ring?.close();
    this.drops?.close();
    this.o.bpf?.flows.close({ keepPins: o.keepPins !== false });
    this.o.bpf?.drops.close();
  }

  private startBpf(b: BpfTaps): void {
    this.stats.observer = "ebpf";
    // The reasons an endpoint drops for itself (a socket closed, a TCP state) are not the network's.
    b.drops.setSkipReasons([...dropReasonNames()].filter(([, name]) => isEndpointReason(name)).map(([n]) => n).filter((n) => n < 1024));
    this.readPods(); // attaches every link and sets the namespaces of drops
    // The ring is read every 50 ms, and every 5 ms while someone follows the flows live (a new
    // flow then reaches the reader within milliseconds; a timer that often costs a bun process
    // about 1 % of a core, which an idle node need not pay). Drops every 50 ms.
    this.timers.push(setInterval(() => { this.tickBpfFlows(); this.tickBpfDrops(); }, 50), setInterval(() => this.flush(), 1000));
  }

  /** New links (a pod's veth a moment ago) are attached; gone ones are let go. */
  linksChanged(): void {
    if (this.o.bpf) this.refreshNames();
  }

  private refreshNames(): void {
    this.names.clear();
    this.pointCodes.clear();
    for (const l of this.nl.links()) {
      this.names.set(l.index, l.name);
      this.pointCodes.set(l.index, [POINTS.indexOf(this.point(l.index, false)), POINTS.indexOf(this.point(l.index, true))]);
    }
    if (this.o.bpf) this.attachLinks(this.o.bpf.flows);
  }

  /** eBPF: the tap on every link of the node but loopback, and off those that went away. */
  private attachLinks(tap: BpfFlowTap): void {
    const on = new Set(tap.attached());
    for (const i of on) if (!this.names.has(i)) { try { tap.detach(i); } catch { /* gone with its link */ } }
    for (const i of this.names.keys()) {
      if (i === 1 || on.has(i)) continue;
      try {
        tap.attach(i);
      } catch (e) {
        // A link that went away between the dump and the attach; anything else is said.
        if (this.names.has(i)) this.o.log.warn({ iface: this.names.get(i), err: (e as Error).message }, "flows on this interface are not observed");
      }
    }
  }

  private readPods(): void {
    const out = new Map<string, string>();
    this.refreshNames(); // a pod made a moment ago has a veth the last dump did not list
    const live = new Set(this.names.values());
    const ns = new Map<number, PodRecord | undefined>();
    const self = netnsInode("/proc/self/ns/net");
    if (self !== undefined) ns.set(self, undefined);
    for (const r of readPodRecords(this.o.podRecords)) {
      // A record whose veth is gone (a DEL that never came) must not name a reused address.
      if (r.hostIface && !live.has(r.hostIface)) continue;
      const ino = this.o.bpf ? netnsInode(r.netns) : undefined;
      if (ino !== undefined) ns.set(ino, r);
      const name = r.pod ? `${r.namespace ?? "default"}/${r.pod}` : `container ${r.containerId.replace(/[^0-9a-zA-Z]/g, "").slice(0, 12)}`;
      for (const ip of r.ips) if (typeof ip === "string") out.set(ip.split("/")[0]!, name);
    }
    this.pods = out;
    this.lastPodsRead = Date.now();
    if (this.o.bpf && (ns.size !== this.nsInodes.size || [...ns.keys()].some((k) => !this.nsInodes.has(k)))) this.o.bpf.drops.setNamespaces([...ns.keys()]);
    this.nsInodes = ns;
  }

  /** This node's pods by address (for the relay: names of pods elsewhere come from their node). */
  podNames(): Record<string, string> {
    // A reader (the relay, the ui) asking right after a pod's ADD gets it: the records' directory
    // is looked at, not only the 2 s timer.
    if (Date.now() - this.lastPodsRead > 2000) this.readPods();
    else this.recordsChanged(true); // asked (the lab right after an ADD): not the packets' 50 ms throttle
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

  /**
   * Reads the ring for at most the tick's budget (a few blocks at a time); with more waiting, the
   * next read comes right after the event loop's other work (probes, kernel events, the API).
   */
  private tick(): void {
    if (!this.ring) return;
    const until = performance.now() + (this.o.tickBudgetMs ?? 4);
    let more = false;
    for (;;) {
      const n = this.ring.drain((p) => this.onPacket(p), 2);
      if (n === 0) break;
      if (performance.now() >= until) { more = true; break; }
    }
    if (more && !this.ticking) this.ticking = setImmediate(() => { this.ticking = undefined; this.tick(); });
    if (this.drops) {
      try {
        for (const d of this.drops.read(MAX_DROPS_PER_TICK * 4)) this.pendingDrops.push(d);
        if (this.drops.skipped) { this.stats.lost += this.drops.skipped; this.stats.dropsShed += this.drops.skipped; this.drops.skipped = 0; }
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, "reading drops failed");
      }
      this.attributeDrops();
    }
  }

  private onPacket(p: RingPacket): void {
    if (p.ifindex === 1) return; // loopback
    const f = fastFields(p.data, this.vxlanPorts);
    if (!f) return;
    this.stats.packets++;
    const weight = f.bulk ? this.stats.sampling : 1;
    if (f.bulk) this.bulkThisSecond++;
    else this.otherThisSecond++;
    let codes = this.pointCodes.get(p.ifindex);
    if (!codes) {
      this.refreshNames();
      codes = this.pointCodes.get(p.ifindex) ?? [POINTS.indexOf("host"), POINTS.indexOf("host")];
      this.pointCodes.set(p.ifindex, codes); // one dump per new interface, not per packet
    }
    const egress = p.pktType === PACKET_OUTGOING;
    const time = p.sec * 1000 + p.nsec / 1e6;
    const at = this.sightingAt;
    this.sTime[at] = time;
    this.sIf[at] = p.ifindex;
    this.sLen[at] = p.len;
    this.sPoint[at] = egress ? codes[1] : codes[0];
    const snap = Math.min(p.data.length, FRAME_BYTES);
    this.sSnap[at] = snap;
    this.sClaimed[at] = 0;
    this.frames.set(snap === p.data.length ? p.data : p.data.subarray(0, snap), at * FRAME_BYTES);
    this.sightingAt = (at + 1) % this.sTime.length;
    if (this.sightingCount < this.sTime.length) this.sightingCount++;
    // Chatter is kept as a sighting (a drop of it must not be pinned on a flow nearby) but makes no flow.
    if (f.chatter) return;
    const id = pointHash(f.hash, p.ifindex, egress);
    const fl = this.flows.get(id);
    if (fl) {
      fl.packets += weight;
      fl.bytes += p.len * weight;
      fl.lastSeen = time;
      // Once a second at most, an active flow moves to the back of the table's order, so that
      // the front is always (nearly) the least recently active: eviction takes it in O(1).
      if (time - fl.touched > 1000) {
        fl.touched = time;
        this.flows.delete(id);
        this.flows.set(id, fl);
      }
      fl.ipLen = f.ipLen;
      fl.flags |= f.tcpFlags;
      if (f.icmpSeq >= 0) fl.seq = f.icmpSeq;
      return;
    }
    // A new flow at this point: its fields in full, and an event at once; past the cap on new
    // flows a second (a pod spraying random ports), counted instead of tracked.
    const key = flowKey(p.data, this.vxlanPorts);
    if (!key || isLinkChatter(key)) return;
    if (!this.newFlows.admit(key.src)) {
      this.stats.shed++;
      this.stats.lost++;
      return;
    }
    if (this.flows.size >= (this.o.maxFlows ?? 20000)) this.evictOldest();
    const point = POINTS[egress ? codes[1] : codes[0]]!;
    const event = this.toEvent(key, time, p.ifindex, point, "forwarded");
    // At a pod's own link, the node's NetworkPolicy is asked: a flow only an audit-mode policy
    // would drop is an AUDIT verdict (it is forwarded all the same).
    if (this.o.judge && (point === "from-pod" || point === "to-pod") && !isLinkChatter(key)) {
      const j = this.o.judge(key.src, key.dst, key.proto, key.dstPort);
      if (j?.verdict === "audit") Object.assign(event, { verdict: "audit", policy: { verdict: "audit", ...(j.policy ? { name: j.policy } : {}), reason: j.reason } });
    }
    this.flows.set(id, { event, packets: 0, bytes: 0, lastSeen: time, touched: time, ipLen: key.ipLen, flags: 0, seq: key.icmpSeq ?? -1 });
    this.stats.flows = this.flows.size;
    this.emit({ ...event, packets: weight, bytes: p.len * weight, ...(this.stats.sampling > 1 ? { sampling: this.stats.sampling } : {}) });
  }

  /** eBPF: the flow events waiting in the ring, for at most the tick's budget (the rest right after other work). */
  private tickBpfFlows(): void {
    const tap = this.o.bpf!.flows;
    if (tap.pending() === 0) return; // the usual case: nothing since the last look
    const until = performance.now() + (this.o.tickBudgetMs ?? 4);
    let more = false;
    for (;;) {
      const evs = tap.poll(256);
      for (const e of evs) this.onTapEvent(e);
      if (evs.length < 256) break;
      if (performance.now() >= until) { more = true; break; }
    }
    if (more && !this.ticking) this.ticking = setImmediate(() => { this.ticking = undefined; this.tickBpfFlows(); });
  }

  /** The sighting slot for a packet the kernel showed us (its first bytes). */
  private keepSighting(time: number, ifindex: number, pointCode: number, len: number, frame: Uint8Array): number {
    const at = this.sightingAt;
    this.sTime[at] = time;
    this.sIf[at] = ifindex;
    this.sLen[at] = len;
    this.sPoint[at] = pointCode;
    const snap = Math.min(frame.length, FRAME_BYTES);
    this.sSnap[at] = snap;
    this.sClaimed[at] = 0;
    this.frames.set(snap === frame.length ? frame : frame.subarray(0, snap), at * FRAME_BYTES);
    this.sightingAt = (at + 1) % this.sTime.length;
    if (this.sightingCount < this.sTime.length) this.sightingCount++;
    return at;
  }

  private codesOf(ifindex: number): [number, number] {
    let codes = this.pointCodes.get(ifindex);
    if (!codes) {
      this.refreshNames();
      codes = this.pointCodes.get(ifindex) ?? [POINTS.indexOf("host"), POINTS.indexOf("host")];
      this.pointCodes.set(ifindex, codes); // one dump per new interface, not per event
    }
    return codes;
  }

  /**
   * One event of the kernel's flow table: a new flow (its first packet, shown at once), a new TCP
   * flag, an end, or a flow's packets of the last second. Each is a sighting (trace and the
   * packet view read its first bytes) and a flow event with the kernel's counts.
   */
  private onTapEvent(e: FlowTapEvent): void {
    if (e.ifindex === 1) return; // loopback
    this.stats.packets += e.packets;
    const codes = this.codesOf(e.ifindex);
    const code = e.egress ? codes[1] : codes[0];
    const time = Number(e.timeNs / 1000n) / 1000;
    if (e.frame.length) this.keepSighting(time, e.ifindex, code, tapWireLen(e), e.frame);
    const id = tapFlowId(e);
    let fl = this.tapFlows.get(id);
    // Past the cap on new flows a second (a pod spraying random ports, the source's share of it): counted before any parsing.
    if (!fl && !this.newFlows.admit(e.src)) { this.stats.shed++; this.stats.lost++; return; }
    const key = tapEventKey(e, this.vxlanPorts);
    if (!key || isLinkChatter(key)) return;
    let packets = e.packets, bytes = e.bytes;
    if (fl) {
      // What the table's read reported already is in the kernel's count again.
      packets = Math.max(0, packets - fl.creditPackets);
      bytes = Math.max(0, bytes - fl.creditBytes);
      fl.creditPackets = 0;
      fl.creditBytes = 0;
      fl.lastEvent = time;
      fl.tailRead = false;
      fl.ipLen = key.ipLen;
      // Once a second at most, an active flow moves to the back of the order eviction reads.
      if (time - fl.event.time > 1000) { this.tapFlows.delete(id); this.tapFlows.set(id, fl); }
      if (packets === 0 && e.reason === "periodic") return;
    } else {
      // A flow the kernel saw first (new), or one a previous agent was told of (adopted flows).
      if (this.tapFlows.size >= (this.o.maxFlows ?? 20000)) {
        const oldest = this.tapFlows.keys().next();
        if (!oldest.done) this.tapFlows.delete(oldest.value);
        this.stats.lost++;
      }
      const point = POINTS[code]!;
      const event = this.toEvent(key, time, e.ifindex, point, "forwarded");
      if (this.o.judge && (point === "from-pod" || point === "to-pod")) {
        const j = this.o.judge(key.src, key.dst, key.proto, key.dstPort);
        if (j?.verdict === "audit") Object.assign(event, { verdict: "audit", policy: { verdict: "audit", ...(j.policy ? { name: j.policy } : {}), reason: j.reason } });
      }
      const kernelKey = tapKernelKey(e);
      fl = { event, lastEvent: time, creditPackets: 0, creditBytes: 0, tailRead: false, ipLen: key.ipLen, ...(kernelKey ? { kernelKey } : {}) };
      this.tapFlows.set(id, fl);
      this.stats.flows = this.tapFlows.size;
    }
    this.emitTapFlow(fl, time, packets, bytes, key);
  }

  private emitTapFlow(fl: TapFlow, time: number, packets: number, bytes: number, key?: FlowKey): void {
    const base = fl.event;
    if (!base.source.pod && this.pods.has(base.source.ip)) base.source = { ...base.source, pod: this.pods.get(base.source.ip)! };
    if (!base.destination.pod && this.pods.has(base.destination.ip)) base.destination = { ...base.destination, pod: this.pods.get(base.destination.ip)! };
    const ev: FlowEvent = { ...base, time, packets, bytes, ipLen: fl.ipLen };
    if (key) {
      if (key.tcpFlags !== undefined) ev.tcpFlags = tcpFlagNames(key.tcpFlags);
      if (key.icmpSeq !== undefined) fl.seq = key.icmpSeq;
      if (key.icmpSeq !== undefined && ev.icmp) ev.icmp = { ...ev.icmp, seq: key.icmpSeq };
      if (key.tunnel && ev.tunnel) ev.tunnel = { ...ev.tunnel, outerIpLen: key.tunnel.outerIpLen };
    } else {
      if (ev.tunnel) ev.tunnel = { ...ev.tunnel, outerIpLen: fl.ipLen + ev.tunnel.overheadBytes };
      if (fl.seq !== undefined && ev.icmp?.seq !== undefined) { fl.seq = (fl.seq + packets) & 0xffff; ev.icmp = { ...ev.icmp, seq: fl.seq }; }
    }
    this.emit(ev);
  }

  /**
   * The kernel reports a flow again only when a packet comes a second after its last report, so
   * a flow's last packets before it goes quiet would wait for a packet that may never come. Each
   * second (as the ring path's flush), the table is read for every flow not yet known to be
   * quiet: what it counted beyond what was reported is shown, and credited, so that the kernel's
   * next event of the flow does not count it twice. A flow without packets for a second is quiet
   * until its next kernel event.
   */
  private flushTapTails(now: number): void {
    const tap = this.o.bpf!.flows;
    let table: ReturnType<BpfFlowTap["flows"]> | undefined;
    let reads = 0;
    const offsetMs = Number(monotonicToRealtime() / 1000n) / 1000;
    for (const [id, fl] of this.tapFlows) {
      if (now - fl.lastEvent > 30_000) { this.tapFlows.delete(id); continue; }
      if (fl.tailRead || !fl.kernelKey) continue;
      if (++reads > 4000) break; // bounded work a second; the rest next second
      table ??= tap.flows();
      const st = tap.counted(fl.kernelKey, table);
      if (!st) { fl.tailRead = true; continue; }
      const last = st.lastNs / 1e6 + offsetMs;
      if (now - last > 1000) fl.tailRead = true;
      const packets = st.packets - st.reportedPackets - fl.creditPackets, bytes = st.bytes - st.reportedBytes - fl.creditBytes;
      if (packets <= 0) continue;
      fl.creditPackets += packets;
      fl.creditBytes += Math.max(0, bytes);
      this.stats.packets += packets;
      this.emitTapFlow(fl, Math.min(now, last), packets, Math.max(0, bytes));
    }
    this.stats.flows = this.tapFlows.size;
  }

  /** eBPF: the kernel's drops, each with its device and namespace; and the events the rings could not take. */
  private tickBpfDrops(): void {
    const b = this.o.bpf!;
    let handled = 0;
    try {
      for (const d of b.drops.poll(MAX_DROPS_PER_TICK * 4)) {
        // A bounded number a tick: past it (a flood to closed ports) the rest are counted as lost.
        if (++handled > MAX_DROPS_PER_TICK) { this.stats.lost++; this.stats.dropsShed++; continue; }
        this.onBpfDrop(d);
      }
    } catch (e) {
      this.o.log.warn({ err: (e as Error).message }, "reading drops failed");
    }
    const lost = b.flows.lost() + b.drops.lost();
    if (lost > this.kernelLost) {
      const n = lost - this.kernelLost;
      this.stats.ringDrops += n;
      this.stats.lost += n;
      for (const l of this.listeners) l.lost(n);
    }
    this.kernelLost = lost;
  }

  private onBpfDrop(d: DropTapEvent): void {
    this.stats.dropsSeen++;
    // Only this node's namespaces (the program filters on them; a set changing under it is checked again here).
    if (!this.nsInodes.has(d.netnsInode)) return;
    const pod = this.nsInodes.get(d.netnsInode);
    const symbol = d.symbol ?? `0x${d.location.toString(16)}`;
    // A raw socket took the echo reply; the ping-socket handler then frees its copy: not a drop.
    if (d.reasonName === "NO_SOCKET" && symbol.startsWith("ping_rcv")) return;
    const key = flowKey(dropFrame(d), this.vxlanPorts);
    if (!key || isLinkChatter(key)) return;
    const egress = transmitDrop(d.reasonName, symbol);
    let point: ObservationPoint, ifindex = d.ifindex;
    if (pod) {
      // In a pod: on its way out of the pod, or delivered into it. Named by the pod's host veth.
      point = egress ? "from-pod" : "to-pod";
      ifindex = [...this.names].find(([, n]) => n === pod.hostIface)?.[0] ?? 0;
    } else {
      point = ifindex ? POINTS[egress ? this.codesOf(ifindex)[1] : this.codesOf(ifindex)[0]]! : "host";
    }
    this.stats.dropsClaimed++;
    this.o.onDrop?.(d.reasonName, point);
    if (++this.dropEventsThisSecond > MAX_DROP_EVENTS_PER_SECOND) { this.stats.lost++; this.stats.dropsShed++; return; }
    const j = d.reasonName === "NETFILTER_DROP" ? this.o.judge?.(key.src, key.dst, key.proto, key.dstPort) : undefined;
    const policy = j?.verdict === "denied" ? { policy: { verdict: "denied" as const, ...(j.policy ? { name: j.policy } : {}), reason: j.reason } } : {};
    const t = Number(d.timeNs / 1000n) / 1000;
    this.emit({ ...this.toEvent(key, t, ifindex, point, "dropped"), packets: 1, bytes: d.skbLen, dropReason: d.reasonName, dropLocation: symbol, ...policy });
  }

  /** The sighting at a slot, its flow fields read from its frame. */
  private sightingAtSlot(at: number): Sighting | undefined {
    const frame = this.frames.subarray(at * FRAME_BYTES, at * FRAME_BYTES + this.sSnap[at]!);
    const key = flowKey(frame, this.vxlanPorts);
    if (!key) return undefined;
    const point = POINTS[this.sPoint[at]!]!;
    return {
      time: this.sTime[at]!, ifindex: this.sIf[at]!, point, egress: point.startsWith("to-"), len: this.sLen[at]!, key, snap: this.sSnap[at]!,
      ...(isLinkChatter(key) ? { chatter: true } : {}),
    };
  }

  /** Slots of the kept sightings, newest first. */
  private *slotsNewestFirst(): Generator<number> {
    const n = this.sTime.length;
    for (let i = 1; i <= this.sightingCount; i++) yield (this.sightingAt - i + n) % n;
  }

  /** The table is full: the flow at the front of its order (the least recently active, to a second) goes. */
  private evictOldest(): void {
    const oldest = this.flows.keys().next();
    if (!oldest.done) this.flows.delete(oldest.value);
    this.stats.lost++;
  }

  /**
   * The pods again when their records may have changed: every 2 s, and at once (a stat of the
   * records' directory, at most every 50 ms) when a new flow names an address not known: a pod
   * made a moment ago is named by its first packet.
   */
  private freshPods(key: FlowKey): void {
    const now = Date.now();
    if (now - this.lastPodsRead > 2000) return this.readPods();
    if (this.pods.has(key.src) && this.pods.has(key.dst)) return;
    this.recordsChanged();
  }

  /** Reads the pods again when their records' directory changed (a stat, at most every 50 ms). */
  private recordsChanged(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDirCheck < 50) return;
    this.lastDirCheck = now;
    let stamp = 0;
    try { stamp = statSync(this.o.podRecords).mtimeMs; } catch { /* no records yet */ }
    if (stamp !== this.dirStamp) { this.dirStamp = stamp; this.readPods(); }
  }
  private lastDirCheck = 0;
  private dirStamp = 0;

  private toEvent(key: FlowKey, time: number, ifindex: number, point: ObservationPoint, verdict: FlowEvent["verdict"]): FlowEvent {
    this.freshPods(key);
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
    this.newFlows.reset();
    this.dropEventsThisSecond = 0;
    if (now - this.lastPodsRead > 2000) this.readPods();
    if (this.o.bpf) this.flushTapTails(now);
    for (const [id, f] of this.flows) {
      if (f.packets > 0) {
        // A flow that began before its pod's record was readable (an agent that was away, a pod
        // being made) takes the name as soon as it is known.
        if (!f.event.source.pod && this.pods.has(f.event.source.ip)) f.event.source = { ...f.event.source, pod: this.pods.get(f.event.source.ip)! };
        if (!f.event.destination.pod && this.pods.has(f.event.destination.ip)) f.event.destination = { ...f.event.destination, pod: this.pods.get(f.event.destination.ip)! };
        const e: FlowEvent = { ...f.event, time: f.lastSeen, packets: f.packets, bytes: f.bytes, ipLen: f.ipLen, ...(this.stats.sampling > 1 ? { sampling: this.stats.sampling } : {}) };
        if (f.flags) e.tcpFlags = tcpFlagNames(f.flags);
        if (f.seq >= 0 && e.icmp) e.icmp = { ...e.icmp, seq: f.seq };
        if (e.tunnel) e.tunnel = { ...e.tunnel, outerIpLen: f.ipLen + e.tunnel.overheadBytes };
        this.emit(e);
        f.packets = 0;
        f.bytes = 0;
        f.flags = 0;
      } else if (now - f.lastSeen > 30_000) {
        this.flows.delete(id);
      }
    }
    // The eBPF path tracks its flows in tapFlows (flushTapTails counted them just now).
    this.stats.flows = this.o.bpf ? this.tapFlows.size : this.flows.size;
    // What was shed under overload (new flows past the cap, drops past theirs) is told to every
    // live reader too, once a second: a flood is never silent in the stream.
    const shed = this.stats.shed + this.stats.dropsShed;
    if (shed > this.shedTold) for (const l of this.listeners) l.lost(shed - this.shedTold);
    this.shedTold = shed;
    this.adjustSampling();
    this.o.onStats?.(this.stats);
    const r = this.ring?.stats();
    if (r?.drops) {
      this.stats.ringDrops += r.drops;
      this.stats.lost += r.drops;
      for (const l of this.listeners) l.lost(r.drops);
    }
  }

  /**
   * Under load the node reads one in N segments of bulk TCP (the kernel's filter picks them at
   * random), so that observing costs little however busy the pods are; packets and bytes are
   * then scaled by N, and flows say so. N doubles while more than SAMPLE_ABOVE packets a second
   * are read, and halves when fewer than a quarter of that would be read with half of it.
   */
  private adjustSampling(): void {
    const n = this.stats.sampling;
    const bulk = this.bulkThisSecond, other = this.otherThisSecond;
    this.bulkThisSecond = 0;
    this.otherThisSecond = 0;
    let next = n;
    if (bulk + other > SAMPLE_ABOVE && bulk > other) next = Math.min(256, n * 2);
    else if (n > 1 && bulk * 2 + other < SAMPLE_ABOVE / 4) next = n / 2;
    if (next !== n && this.ring?.sample(next, this.vxlanPorts.values().next().value ?? 8472)) {
      this.stats.sampling = next;
      this.o.log.info({ oneIn: next, packetsPerSecond: bulk * n + other }, next > n ? "busy: reading 1 in N TCP bulk segments" : "reading more of the TCP bulk again");
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
    let handled = 0;
    for (const d of this.pendingDrops) {
      const t = Number(d.tsNs / 1000n) / 1000;
      if (now - t < 80) { keep.push(d); continue; }
      // A bounded number of drops a tick: past it (a flood to closed ports) the rest are counted as lost.
      if (++handled > MAX_DROPS_PER_TICK) { this.stats.lost++; this.stats.dropsShed++; continue; }
      this.stats.dropsSeen++;
      const found = this.lastSightingBefore(t, d.protocol === 34525 ? 6 : d.protocol === 2048 ? 4 : 0);
      // A raw socket took the echo reply; the ping-socket handler then frees its copy: not a drop.
      if (d.reason === "NO_SOCKET" && d.location.startsWith("ping_rcv")) continue;
      if (!found || this.sClaimed[found.at]) continue;
      const s = found.s;
      if (s.point === "to-network" || s.chatter || !plausible(d, s)) continue;
      this.sClaimed[found.at] = 1;
      this.stats.dropsClaimed++;
      this.o.onDrop?.(d.reason, s.point);
      // Counted always; shown as events up to a rate (a flood to closed ports would push every other flow out of the ring).
      if (++this.dropEventsThisSecond > MAX_DROP_EVENTS_PER_SECOND) { this.stats.lost++; this.stats.dropsShed++; continue; }
      // A firewall drop that the node's NetworkPolicy explains is that policy's: named, with why.
      const j = d.reason === "NETFILTER_DROP" ? this.o.judge?.(s.key.src, s.key.dst, s.key.proto, s.key.dstPort) : undefined;
      const policy = j?.verdict === "denied" ? { policy: { verdict: "denied" as const, ...(j.policy ? { name: j.policy } : {}), reason: j.reason } } : {};
      this.emit({ ...this.toEvent(s.key, t, s.ifindex, s.point, "dropped"), packets: 1, bytes: s.len, dropReason: d.reason, dropLocation: d.location, ...policy });
    }
    if (keep.length > 1000) { this.stats.lost += keep.length - 1000; this.stats.dropsShed += keep.length - 1000; }
    this.pendingDrops = keep.slice(-1000);
  }

  /**
   * The packet seen last before time `t` (within 20 ms), of the family. The kept sightings are in
   * the order the ring handed them over, which is time order to within a block: a binary search
   * finds where `t` falls, so a drop costs O(log n) however busy the node is (a walk from the
   * newest packet cost one step per packet seen since, thousands under a flood).
   */
  private lastSightingBefore(t: number, family: 0 | 4 | 6): { s: Sighting; at: number } | undefined {
    const n = this.sTime.length, count = this.sightingCount, start = this.sightingAt - count + n;
    const slot = (i: number) => (start + i) % n;
    let lo = 0, hi = count; // the first logical index whose time is after t + 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sTime[slot(mid)]! > t + 1) hi = mid;
      else lo = mid + 1;
    }
    for (let i = lo - 1; i >= 0; i--) {
      const at = slot(i);
      const time = this.sTime[at]!;
      if (time > t + 1) continue;
      if (time < t - 20) return undefined;
      const s = this.sightingAtSlot(at);
      if (s && (family === 0 || s.key.tunnel || s.key.family === family)) return { s, at };
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
    if (this.listeners.size === 0) return;
    const line = JSON.stringify(e) + "\n"; // once, whatever the number of listeners
    for (const l of this.listeners) l.push(line);
  }

  /** The last `n` events, oldest first, optionally only those after `since` (ms). */
  /**
   * The last `n` events in time order (0: none), optionally only those after `since` (ms). The
   * ring holds them in the order they were made, which is not time order: a flow's update of the
   * last second carries the time of its last packet.
   */
  recent(n: number, since = 0): FlowEvent[] {
    if (!(n > 0)) return [];
    const all = [...this.events.slice(this.eventStart), ...this.events.slice(0, this.eventStart)];
    return all.filter((e) => e.time > since).sort((a, b) => a.time - b.time).slice(-n);
  }

  /**
   * What the kernel has handed over and the timers have not read yet, read now: a trace asks
   * right after its probe, and on a loaded node a 50 ms timer may fire long after (a trace once
   * missed every hop on one node so). The packet ring's open block still waits for its timeout.
   */
  private catchUp(): void {
    if (this.o.bpf) this.tickBpfFlows();
    else this.tick();
  }

  /** Sightings matching a packet's identity (trace), oldest first. */
  sightingsOf(m: SightingMatch): Sighting[] {
    this.catchUp();
    const out: Sighting[] = [];
    for (const at of this.slotsNewestFirst()) {
      if (m.since !== undefined && this.sTime[at]! < m.since) continue;
      const s = this.sightingAtSlot(at);
      if (s && sightingMatches(s, m)) out.push(s);
    }
    // Oldest first; one skb keeps its timestamp across hops, so equal times keep the order seen.
    return out.reverse().sort((a, b) => a.time - b.time);
  }

  /**
   * The last `last` packets of a flow as the dissector reads them (the packet-in-packet view),
   * at one observation point or any: matched as sightingsOf matches.
   */
  packets(m: SightingMatch & { point?: string; last?: number }): (PacketView & { time: number; point: ObservationPoint; interface: string })[] {
    this.catchUp();
    const out: (PacketView & { time: number; point: ObservationPoint; interface: string })[] = [];
    for (const at of this.slotsNewestFirst()) {
      if (out.length >= (m.last ?? 3)) break;
      if (m.point && POINTS[this.sPoint[at]!] !== m.point) continue;
      const s = this.sightingAtSlot(at);
      if (!s || !sightingMatches(s, m)) continue;
      const frame = this.frames.slice(at * FRAME_BYTES, at * FRAME_BYTES + s.snap);
      out.push({ ...viewFrame(frame, s.len), time: s.time, point: s.point, interface: this.names.get(s.ifindex) ?? `if${s.ifindex}` });
    }
    return out.reverse();
  }

  /**
   * A live listener. Events wait in a queue of at most `maxQueue` lines until the event loop
   * hands them to the sink together; while the sink has more than `maxBacklog` bytes not yet
   * sent (a reader that does not read), events are dropped instead of buffered. Either way they
   * are counted and the reader gets a {"lost": n} line before the next events it does get.
   */
  listen(sink: StreamSink, o: { maxQueue?: number; maxBacklog?: number } = {}): () => void {
    const maxQueue = o.maxQueue ?? 2000, maxBacklog = o.maxBacklog ?? 1 << 20;
    let queue: string[] = [];
    let lost = 0;
    let scheduled = false;
    const drop = (n: number) => { lost += n; this.stats.lost += n; };
    const flush = () => {
      scheduled = false;
      const batch = queue;
      queue = [];
      if (sink.backlog() > maxBacklog) return drop(batch.length);
      if (lost) { sink.write(JSON.stringify({ lost }) + "\n"); lost = 0; }
      if (batch.length) sink.write(batch.join(""));
    };
    const schedule = () => { if (!scheduled) { scheduled = true; setImmediate(flush); } };
    const l: Listener = {
      push: (line) => {
        if (queue.length >= maxQueue) return drop(1);
        queue.push(line);
        schedule();
      },
      // Lost upstream (the kernel's ring): not this listener's doing, but it is told.
      lost: (n) => { lost += n; schedule(); },
    };
    this.listeners.add(l);
    if (this.o.bpf && !this.fastPoll) this.fastPoll = setInterval(() => this.tickBpfFlows(), 5);
    return () => {
      this.listeners.delete(l);
      if (this.listeners.size === 0 && this.fastPoll) { clearInterval(this.fastPoll); this.fastPoll = undefined; }
    };
  }

}

function tunnelOf(k: FlowKey): FlowEvent["tunnel"] {
  const t = k.tunnel!;
  return { protocol: "vxlan", vni: t.vni, outer: { source: t.outerSrc, destination: t.outerDst, sourcePort: t.outerSrcPort, destinationPort: t.outerDstPort }, outerIpLen: t.outerIpLen, overheadBytes: t.overhead };
}
