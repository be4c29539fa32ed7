// BpfFlowTap: bpf/observe.c on a node's interfaces, for the agent's flow observer. It loads the
// embedded object (adopting the flow table and config pinned by a previous run, so flows carry
// on), attaches both hooks of each interface it is given (tcx in front of what is there, or a
// clsact filter before 6.6), sets the program's config (VXLAN ports, report interval, trace
// match), and turns ring-buffer records into decoded events. Times are CLOCK_REALTIME
// nanoseconds, converted from the program's CLOCK_MONOTONIC at read time (the offset between
// the clocks is sampled at each poll). Everything it makes sits under its pin directory (maps,
// tcx links) or is named "gauze-observe-*" (clsact filters), so remove() finds all of it.
import { join } from "node:path";
import { monotonicToRealtime } from "./clock.ts";
import { Rtnl } from "../netlink/index.ts";
import { tcx } from "./features.ts";
import { type ClsactAttachment, type Direction, BpfLink, attachClsact, attachTcx, clsactAttached, detachClsact, removeClsactIfEmpty } from "./link.ts";
import { type FlowCacheSlot, type FlowKey, type FlowState, type FlowTapConfig, type FlowTapEvent, cacheSlot, configCodec, decodeFlowEvent, flowCacheCodec, flowKeyCodec, flowStateCodec, sameFlowKey } from "./flow-codec.ts";
import { type PerCpuMap, type TypedMap, u32, u64 } from "./map.ts";
import { type BpfObject, loadObject } from "./object.ts";
import { embeddedObject } from "./objects.ts";
import { listPins, makePinDir, removePins, unpin } from "./pin.ts";
import { RingBuffer } from "./ringbuf.ts";

export type { FlowKey, FlowReason, FlowState, FlowTapConfig, FlowTapEvent, TraceMatch } from "./flow-codec.ts";

export const OBSERVE_FILTER_PREFIX = "gauze-observe-";
/** clsact: our filters' priority and handle (first to run; the handle spells "gz"). */
const CLSACT_PRIORITY = 1, CLSACT_HANDLE = 0x677a;
const DIRECTIONS: readonly Direction[] = ["ingress", "egress"];

export interface FlowTapOptions {
  /** Adopt and pin the flow table, config and tcx links here (none: nothing pinned, all goes with close()). */
  pinDir?: string;
  /** The network namespace the interfaces are in (attach calls are made inside it). */
  netns?: string;
  /** tcx or clsact (auto: tcx where the kernel has it). */
  mode?: "auto" | "tcx" | "clsact";
  config?: Partial<FlowTapConfig>;
  maxFlows?: number;
  /** Ring buffer size in bytes (a power of two, at least a page). */
  ringBytes?: number;
  /** The object to load (default: the embedded observe.o). */
  object?: Uint8Array;
}

export const DEFAULT_FLOW_CONFIG: FlowTapConfig = { vxlanPorts: [8472, 4789], reportIntervalNs: 1e9 };

const linkPin = (pinDir: string, ifindex: number, d: Direction) => join(pinDir, "links", `tcx-${ifindex}-${d}`);

export class BpfFlowTap {
  private readonly links = new Map<string, BpfLink>();
  private readonly filters = new Map<string, ClsactAttachment>();
  private readonly ring: RingBuffer;
  private readonly configMap: TypedMap<number, FlowTapConfig>;
  private readonly slots: PerCpuMap<number, FlowCacheSlot>;
  private closed = false;

  private constructor(readonly obj: BpfObject, readonly mode: "tcx" | "clsact", private readonly o: FlowTapOptions) {
    this.ring = RingBuffer.open(obj.map("events"));
    this.configMap = obj.map("config").typed(u32, configCodec);
    this.slots = obj.map("flow_cache").perCpu(u32, flowCacheCodec);
  }

  static open(o: FlowTapOptions = {}): BpfFlowTap {
    let mode: "tcx" | "clsact" = o.mode === "clsact" ? "clsact" : "tcx";
    if (o.mode === undefined || o.mode === "auto") mode = tcx().ok ? "tcx" : "clsact";
    const obj = loadObject(o.object ?? embeddedObject("observe"), {
      ...(o.pinDir ? { pinDir: o.pinDir } : {}),
      maxEntries: { ...(o.maxFlows ? { flows: o.maxFlows } : {}), ...(o.ringBytes ? { events: o.ringBytes } : {}) },
    });
    try {
      const tap = new BpfFlowTap(obj, mode, o);
      const adopted = obj.adopted.includes("config") ? tap.config() : undefined;
      tap.setConfig({ ...DEFAULT_FLOW_CONFIG, ...(adopted?.reportIntervalNs ? adopted : {}), ...o.config });
      return tap;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Why the object loaded differently from its wish (BTF refused, a pinned map replaced). */
  get warnings(): readonly string[] {
    return this.obj.warnings;
  }

  config(): FlowTapConfig {
    return this.configMap.lookup(0) ?? DEFAULT_FLOW_CONFIG;
  }

  /** Changes what is given (`trace: undefined` turns tracing off), keeps the rest. */
  setConfig(c: Partial<FlowTapConfig>): void {
    const next = { ...this.config(), ...c };
    if (next.trace === undefined) delete next.trace;
    this.configMap.update(0, next);
  }

  /** Both hooks of the interface (idempotent; a pinned link from a previous run is taken over). */
  attach(ifindex: number): void {
    for (const d of DIRECTIONS) {
      const key = `${ifindex}/${d}`;
      const prog = this.obj.program(d === "ingress" ? "observe_ingress" : "observe_egress");
      if (this.mode === "clsact") {
        if (this.filters.has(key)) continue;
        this.filters.set(key, attachClsact(prog, ifindex, d, { name: OBSERVE_FILTER_PREFIX + d, priority: CLSACT_PRIORITY, handle: CLSACT_HANDLE, ...(this.o.netns ? { netns: this.o.netns } : {}) }));
        continue;
      }
      if (this.links.has(key)) continue;
      const path = this.o.pinDir ? linkPin(this.o.pinDir, ifindex, d) : undefined;
      const old = path ? BpfLink.fromPin(path) : undefined;
      if (old) {
        const info = old.info();
        if (info.ifindex === ifindex && info.direction === d) {
          old.update(prog);
          this.links.set(key, old);
          continue;
        }
        old.close(); // defunct (its interface went away) or not ours to reuse
        unpin(path!);
      }
      const link = attachTcx(prog, ifindex, d, this.o.netns, { first: true });
      if (path) {
        makePinDir(join(this.o.pinDir!, "links"));
        link.pin(path);
      }
      this.links.set(key, link);
    }
  }

  /** Both hooks off the interface (quiet when they were not on it). */
  detach(ifindex: number): void {
    let filters = 0;
    for (const d of DIRECTIONS) {
      const key = `${ifindex}/${d}`;
      const link = this.links.get(key);
      if (link) {
        try { link.detach(); } catch { /* its interface is gone */ }
        link.close();
        if (this.o.pinDir) unpin(linkPin(this.o.pinDir, ifindex, d));
        this.links.delete(key);
      }
      const f = this.filters.get(key);
      if (f) {
        detachClsact(f);
        this.filters.delete(key);
        filters++;
      }
    }
    // A clsact qdisc with nothing left on it does nothing: gone with our filters.
    if (filters) removeClsactIfEmpty(ifindex, this.o.netns);
  }

  /** The interfaces this tap is attached to. */
  attached(): number[] {
    return [...new Set([...this.links.keys(), ...this.filters.keys()].map((k) => Number(k.split("/")[0])))].sort((a, b) => a - b);
  }

  /** Up to `max` events from the ring, decoded. */
  poll(max = 4096): FlowTapEvent[] {
    const out: FlowTapEvent[] = [];
    const offset = monotonicToRealtime();
    this.ring.poll((r) => out.push(decodeFlowEvent(r, offset)), max);
    return out;
  }

  /** Bytes of events waiting in the ring (two reads of shared memory, no syscall: cheap to ask often). */
  pending(): number {
    return this.ring.pending();
  }

  /** Sleeps up to `timeoutMs` until there are events. */
  wait(timeoutMs: number): boolean {
    return this.ring.wait(timeoutMs);
  }

  /** Events the program could not put in the ring (it was full), since it was loaded. */
  lost(): number {
    return (this.obj.map("lost").perCpu(u32, u64).lookup(0) ?? []).reduce((a, b) => a + b, 0);
  }

  /** The flow table as the kernel holds it (without what waits in the per-CPU slots: counted() adds that). */
  flows(): TypedMap<FlowKey, FlowState> {
    return this.obj.map("flows").typed(flowKeyCodec, flowStateCodec);
  }

  /**
   * A flow's state with every packet counted: its entry in `flows` plus what each CPU's slot of
   * flow_cache holds for it. Read in that order: the program empties a slot before it adds the
   * slot's count to `flows`, so a packet moving meanwhile is missed here (and shows a read
   * later), never counted twice.
   */
  counted(key: FlowKey, table = this.flows()): FlowState | undefined {
    const st = table.lookup(key);
    if (!st) return undefined;
    for (const c of this.slots.lookup(cacheSlot(key)) ?? []) {
      if (!c.valid || !c.packets || !sameFlowKey(c.key, key)) continue;
      st.packets += c.packets;
      st.bytes += c.bytes;
      st.lastNs = Math.max(st.lastNs, c.lastNs);
    }
    return st;
  }

  /** Every flow with every packet counted (counted() for each). */
  *countedFlows(): Generator<[FlowKey, FlowState]> {
    const table = this.flows();
    for (const k of table.keys()) {
      const st = this.counted(k, table);
      if (st) yield [k, st];
    }
  }

  /**
   * Closes every fd. keepPins: the pinned links keep observing and the pinned maps keep the
   * flows, for the next run to adopt; otherwise everything this tap attached or pinned goes.
   */
  close(o: { keepPins?: boolean } = {}): void {
    if (this.closed) return;
    this.closed = true;
    if (!o.keepPins) for (const i of this.attached()) this.detach(i);
    for (const l of this.links.values()) l.close();
    this.ring.close();
    this.obj.close();
    if (!o.keepPins && this.o.pinDir) BpfFlowTap.remove(this.o.pinDir, this.o.netns);
  }

  /**
   * Removes what any flow tap left under `pinDir` and in `netns`: pinned tcx links detached and
   * unpinned, pinned maps unpinned, gauze-observe clsact filters (and clsact qdiscs they leave
   * empty) deleted. Returns what it removed, in words.
   */
  static remove(pinDir: string, netns?: string): string[] {
    const removed: string[] = [];
    for (const rel of listPins(pinDir)) {
      if (!rel.startsWith("links/")) continue;
      const l = BpfLink.fromPin(join(pinDir, rel));
      if (!l) continue;
      try { l.detach(); } catch { /* already detached */ }
      l.close();
    }
    removed.push(...removePins(pinDir).map((p) => `pin ${p}`));
    const nl = Rtnl.open(netns ? { netns } : {});
    try {
      for (const link of nl.links()) {
        let ours = false;
        for (const d of DIRECTIONS) {
          for (const f of clsactAttached(link.index, d, netns)) {
            if (!f.name.startsWith(OBSERVE_FILTER_PREFIX)) continue;
            detachClsact({ ...f, ...(netns ? { netns } : {}) });
            removed.push(`clsact filter ${f.name} on ${link.name}`);
            ours = true;
          }
        }
        if (ours && removeClsactIfEmpty(link.index, netns)) removed.push(`clsact qdisc on ${link.name}`);
      }
    } finally {
      nl.close();
    }
    return removed;
  }
}
