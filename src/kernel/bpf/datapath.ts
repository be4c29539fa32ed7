// BpfDatapath: bpf/datapath.c on a node, for the eBPF datapath. Everything lives under one pin
// directory (/sys/fs/bpf/gauze/<node>/datapath): the maps (endpoints, remotes, nat_flows, stats),
// the programs (prog/from_pod, prog/from_net, prog/watch_nat, so a short-lived CNI plugin
// attaches a pod without loading and verifying the object again) and the tcx links
// (links/pod-<host veth>, links/net-<device> at ingress, links/watch-<device> at egress), so the datapath outlives the agent and the plugin that made it, and an
// agent restart loses no packet. On kernels without tcx (before 6.6) a clsact filter named
// gauze-datapath-* (priority 2: the observer's, at 1, runs first) holds the attachment instead.
// The agent opens the object (open(): load, adopt the pinned maps, re-pin the programs, move
// the existing links onto the new programs); the plugin only uses the pins (attachPod,
// detachPod, podAttached). remove() takes all of it away.
import { join } from "node:path";
import { formatMac, parseMac } from "../netlink/wire.ts";
import { Rtnl } from "../netlink/index.ts";
import { formatIPBytes, ipBytes, prefixBytes } from "../../net/cidr.ts";
import { tcx } from "./features.ts";
import { BpfLink, type Direction, attachClsact, attachTcx, clsactAttached, detachClsact, ingressProgramNames, removeClsactIfEmpty, tcxAttached } from "./link.ts";
import { type Codec, type TypedMap, BpfMap, u32, u64 } from "./map.ts";
import { type BpfObject, loadObject } from "./object.ts";
import { embeddedObject } from "./objects.ts";
import { listPins, makePinDir, pinExists, removePins, unpin } from "./pin.ts";
import { BpfProgram } from "./program.ts";

export const DATAPATH_FILTER_PREFIX = "gauze-datapath-";
const CLSACT_PRIORITY = 2, CLSACT_HANDLE = 0x677b;
const INGRESS: Direction = "ingress";

/** Endpoint flag: this pod's packets take the classic path both ways (a NetworkPolicy isolates it). */
export const EP_CLASSIC = 1;

/** The counters of bpf/datapath.c's stats map, by index. */
export const DATAPATH_STATS = ["local", "direct", "tunnel", "inbound", "pass", "classic", "ttl", "spoof", "nat", "natSeen"] as const;

/**
 * The skb->mark bit watch_nat looks for, and the nftables table that sets it after NAT on the
 * packets of DNATed connections (kube-proxy's ClusterIP and NodePort rules), in every family.
 */
export const DNAT_MARK = 0x20000000;
export const DNAT_MARK_TABLE = "gauze_datapath";
export const DNAT_MARK_NFT = [
  `table inet ${DNAT_MARK_TABLE} {}`, `delete table inet ${DNAT_MARK_TABLE}`,
  `table inet ${DNAT_MARK_TABLE} {`,
  "  chain postrouting {",
  "    type filter hook postrouting priority srcnat + 1; policy accept;",
  `    ct status dnat meta mark set meta mark or 0x${DNAT_MARK.toString(16)}`,
  "  }",
  "}", "",
].join("\n");
export type DatapathStat = (typeof DATAPATH_STATS)[number];

/** A pod on this node, as the programs see it. */
export interface Endpoint {
  /** The pod's host-side veth (in the node's namespace). */
  ifindex: number;
  flags: number;
  /** The pod's interface MAC, and the gateway (bridge) MAC it expects routed packets from. */
  mac: string;
  gwMac: string;
}

export interface Remote {
  /** The next hop bpf_redirect_neigh resolves: the peer's node IP (direct) or VTEP address (tunnel). */
  nexthop: string;
  ifindex: number;
  mode: "direct" | "tunnel";
}

export class DatapathError extends Error {
  constructor(message: string, readonly fix: string) {
    super(`${message} (${fix})`);
    this.name = "DatapathError";
  }
}

/** struct endpoint_key: family, 3 bytes of padding, 16 address bytes (IPv4 in the first 4). */
export const endpointKeyCodec: Codec<string> = {
  size: 20,
  encode(ip, v, o) {
    const b = ipBytes(ip);
    if (!b) throw new TypeError(`endpoint ${JSON.stringify(ip)} is not an IP address`);
    v.setUint8(o, b.family);
    new Uint8Array(v.buffer, v.byteOffset + o + 4, 16).set(b.bytes);
  },
  decode(v, o) {
    const family = v.getUint8(o);
    const b = new Uint8Array(v.buffer.slice(v.byteOffset + o + 4, v.byteOffset + o + 4 + (family === 4 ? 4 : 16)));
    return formatIPBytes(b) ?? "?";
  },
};

const macAt = (v: DataView, o: number) => formatMac(new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + 6)));
function putMac(v: DataView, o: number, mac: string, what: string): void {
  const b = parseMac(mac);
  if (!b) throw new TypeError(`${what} ${JSON.stringify(mac)} is not a MAC address`);
  new Uint8Array(v.buffer, v.byteOffset + o, 6).set(b);
}

/** struct endpoint: ifindex, flags, mac[6], gw_mac[6], pad. */
export const endpointCodec: Codec<Endpoint> = {
  size: 24,
  encode(e, v, o) {
    v.setUint32(o, e.ifindex, true);
    v.setUint32(o + 4, e.flags, true);
    putMac(v, o + 8, e.mac, "pod MAC");
    putMac(v, o + 14, e.gwMac, "gateway MAC");
  },
  decode: (v, o) => ({ ifindex: v.getUint32(o, true), flags: v.getUint32(o + 4, true), mac: macAt(v, o + 8), gwMac: macAt(v, o + 14) }),
};

/** struct remote_key: prefixlen counts family and padding (32 bits) and then the address bits. */
export const remoteKeyCodec: Codec<string> = {
  size: 24,
  encode(prefix, v, o) {
    const p = prefixBytes(prefix);
    if (!p) throw new TypeError(`remote ${JSON.stringify(prefix)} is not a CIDR`);
    v.setUint32(o, 32 + p.bits, true);
    v.setUint8(o + 4, p.family);
    new Uint8Array(v.buffer, v.byteOffset + o + 8, 16).set(p.bytes);
  },
  decode(v, o) {
    const family = v.getUint8(o + 4);
    const b = new Uint8Array(v.buffer.slice(v.byteOffset + o + 8, v.byteOffset + o + 8 + (family === 4 ? 4 : 16)));
    return `${formatIPBytes(b) ?? "?"}/${v.getUint32(o, true) - 32}`;
  },
};

/** struct remote: nexthop[16], ifindex, family, mode (1 direct, 2 tunnel), pad. */
export const remoteCodec: Codec<Remote> = {
  size: 24,
  encode(r, v, o) {
    const b = ipBytes(r.nexthop);
    if (!b) throw new TypeError(`next hop ${JSON.stringify(r.nexthop)} is not an IP address`);
    new Uint8Array(v.buffer, v.byteOffset + o, 16).set(b.bytes);
    v.setUint32(o + 16, r.ifindex, true);
    v.setUint8(o + 20, b.family);
    v.setUint8(o + 21, r.mode === "tunnel" ? 2 : 1);
  },
  decode(v, o) {
    const family = v.getUint8(o + 20);
    const nexthop = formatIPBytes(new Uint8Array(v.buffer.slice(v.byteOffset + o, v.byteOffset + o + (family === 4 ? 4 : 16)))) ?? "?";
    return { nexthop, ifindex: v.getUint32(o + 16, true), mode: v.getUint8(o + 21) === 2 ? "tunnel" : "direct" };
  },
};

export interface DatapathOptions {
  /** Where the maps, programs and links are pinned (required: the plugin finds them there). */
  pinDir: string;
  /** The node's network namespace (attach calls are made inside it); none: the caller's. */
  netns?: string;
  /** tcx or clsact (auto: tcx where the kernel has it). */
  mode?: "auto" | "tcx" | "clsact";
  /** The object to load (default: the embedded datapath.o). */
  object?: Uint8Array;
}

type Hook = "pod" | "net" | "watch";
const progOf = (h: Hook) => (h === "pod" ? "from_pod" : h === "net" ? "from_net" : "watch_nat");
const dirOf = (h: Hook): Direction => (h === "watch" ? "egress" : "ingress");
const progPin = (pinDir: string, h: Hook) => join(pinDir, "prog", progOf(h));
/** bpffs refuses names with a "." (gauze.1): those become "_" in a link's pin name. */
const linkPin = (pinDir: string, h: Hook, dev: string) => join(pinDir, "links", `${h}-${dev.replaceAll(".", "_")}`);
const within = (netns: string | undefined) => (netns ? { netns } : {});

function pickMode(m: DatapathOptions["mode"]): "tcx" | "clsact" {
  if (m === "tcx" || m === "clsact") return m;
  return tcx().ok ? "tcx" : "clsact";
}

/** One hook of a device: a pinned tcx link (replaced when it is for another interface), or a named clsact filter. */
function attachHook(prog: BpfProgram, h: Hook, dev: string, ifindex: number, o: DatapathOptions): void {
  if (pickMode(o.mode) === "clsact") {
    attachClsact(prog, ifindex, dirOf(h), { name: `${DATAPATH_FILTER_PREFIX}${h}`, priority: CLSACT_PRIORITY, handle: CLSACT_HANDLE, ...within(o.netns) });
    return;
  }
  const path = linkPin(o.pinDir, h, dev);
  const old = BpfLink.fromPin(path);
  if (old) {
    try {
      const info = old.info();
      if (info.ifindex === ifindex && info.direction === dirOf(h)) {
        old.update(prog);
        return;
      }
      try { old.detach(); } catch { /* defunct: its interface went away */ }
    } finally {
      old.close();
    }
    unpin(path);
  }
  // After what is there (the flow observer goes first, with BPF_F_BEFORE): a redirect ends the chain.
  const link = attachTcx(prog, ifindex, dirOf(h), o.netns);
  try {
    makePinDir(join(o.pinDir, "links"));
    link.pin(path);
  } finally {
    link.close();
  }
}

function detachHook(h: Hook, dev: string, ifindex: number | undefined, o: DatapathOptions): boolean {
  let did = false;
  const path = linkPin(o.pinDir, h, dev);
  const l = BpfLink.fromPin(path);
  if (l) {
    try { l.detach(); } catch { /* defunct */ }
    l.close();
    unpin(path);
    did = true;
  }
  if (ifindex !== undefined && ifindex > 0) {
    try {
      for (const f of clsactAttached(ifindex, dirOf(h), o.netns)) {
        if (f.name !== `${DATAPATH_FILTER_PREFIX}${h}`) continue;
        detachClsact({ ...f, ...within(o.netns) });
        did = true;
      }
      if (did) removeClsactIfEmpty(ifindex, o.netns);
    } catch {
      // the interface is gone, and its filters with it
    }
  }
  return did;
}

/** Whether one of our programs runs at the device's ingress (tcx or clsact). */
function hookAttached(h: Hook, ifindex: number, o: DatapathOptions): boolean {
  const prog = BpfProgram.fromPin(progPin(o.pinDir, h));
  if (!prog) return false;
  try {
    const id = prog.info().id;
    if (pickMode(o.mode) === "tcx") return tcxAttached(ifindex, dirOf(h), o.netns).progIds.includes(id);
    return clsactAttached(ifindex, dirOf(h), o.netns).some((f) => f.progId === id);
  } catch {
    return false;
  } finally {
    prog.close();
  }
}

export class BpfDatapath {
  private closed = false;

  private constructor(readonly obj: BpfObject, readonly mode: "tcx" | "clsact", private readonly o: DatapathOptions) {}

  /** Loads the object (adopting the pinned maps), pins both programs, moves pinned pod links onto the new from_pod. */
  static open(o: DatapathOptions): BpfDatapath {
    const mode = pickMode(o.mode);
    const obj = loadObject(o.object ?? embeddedObject("datapath"), { pinDir: o.pinDir });
    try {
      const dp = new BpfDatapath(obj, mode, { ...o, mode });
      makePinDir(join(o.pinDir, "prog"));
      for (const h of ["pod", "net", "watch"] as const) {
        const path = progPin(o.pinDir, h);
        unpin(path);
        obj.program(progOf(h)).pin(path);
      }
      // A restarted (or upgraded) agent: every pod keeps its link, now running this program.
      for (const rel of listPins(join(o.pinDir, "links"))) {
        const h: Hook = rel.startsWith("pod-") ? "pod" : rel.startsWith("watch-") ? "watch" : "net";
        const l = BpfLink.fromPin(join(o.pinDir, "links", rel));
        if (!l) continue;
        try { l.update(obj.program(progOf(h))); } catch { /* defunct: its interface is gone; the agent's sweep unpins it */ }
        l.close();
      }
      return dp;
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  get warnings(): readonly string[] {
    return this.obj.warnings;
  }

  endpoints(): TypedMap<string, Endpoint> {
    return this.obj.map("endpoints").typed(endpointKeyCodec, endpointCodec);
  }

  remotes(): TypedMap<string, Remote> {
    return this.obj.map("remotes").typed(remoteKeyCodec, remoteCodec);
  }

  /** Decisions counted since the maps were made (summed over CPUs). */
  stats(): Record<DatapathStat, number> {
    const m = this.obj.map("stats").perCpu(u32, u64);
    return Object.fromEntries(DATAPATH_STATS.map((s, i) => [s, (m.lookup(i) ?? []).reduce((a, b) => a + b, 0)])) as Record<DatapathStat, number>;
  }

  /** from_net at the ingress of an underlay or tunnel device (idempotent). */
  attachNet(dev: string, ifindex: number): void {
    attachHook(this.obj.program("from_net"), "net", dev, ifindex, this.o);
  }

  detachNet(dev: string, ifindex?: number): boolean {
    return detachHook("net", dev, ifindex, this.o);
  }

  netAttached(ifindex: number): boolean {
    return hookAttached("net", ifindex, this.o);
  }

  /** watch_nat at the egress of an underlay, tunnel or bridge device (idempotent). */
  attachWatch(dev: string, ifindex: number): void {
    attachHook(this.obj.program("watch_nat"), "watch", dev, ifindex, this.o);
  }

  watchAttached(ifindex: number): boolean {
    return hookAttached("watch", ifindex, this.o);
  }

  /** Pinned links and their devices: "pod-<veth>" / "net-<dev>". */
  pinnedLinks(): string[] {
    return listPins(join(this.o.pinDir, "links"));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.obj.close();
  }

  /** Whether an agent has loaded the datapath under `pinDir` (both programs pinned). */
  static loaded(pinDir: string): boolean {
    return pinExists(progPin(pinDir, "pod")) && pinExists(progPin(pinDir, "net"));
  }

  /** The endpoints map from its pin, for the plugin (close the map after use). */
  static endpointsPinned(pinDir: string): { map: TypedMap<string, Endpoint>; close: () => void } {
    const m = BpfMap.fromPin(join(pinDir, "endpoints"), "endpoints");
    if (!m) throw new DatapathError(`the eBPF datapath's endpoints map is not pinned at ${join(pinDir, "endpoints")}`, "the node's agent loads the datapath at start (gauze agent --datapath ebpf); is it running?");
    return { map: m.typed(endpointKeyCodec, endpointCodec), close: () => m.close() };
  }

  /** from_pod at the ingress of a pod's host veth, from the pinned program (the plugin's ADD). */
  static attachPod(o: DatapathOptions, hostIface: string, ifindex: number): void {
    const prog = BpfProgram.fromPin(progPin(o.pinDir, "pod"), "from_pod");
    if (!prog) throw new DatapathError(`the eBPF datapath's from_pod program is not pinned at ${progPin(o.pinDir, "pod")}`, "the node's agent loads the datapath at start (gauze agent --datapath ebpf); is it running?");
    try {
      attachHook(prog, "pod", hostIface, ifindex, o);
    } finally {
      prog.close();
    }
  }

  /** Takes from_pod off a pod's veth (quiet when it was not there or the veth is gone). */
  static detachPod(o: DatapathOptions, hostIface: string, ifindex?: number): boolean {
    return detachHook("pod", hostIface, ifindex, o);
  }

  static podAttached(o: DatapathOptions, ifindex: number): boolean {
    return hookAttached("pod", ifindex, o);
  }

  /** Whether from_net is attached at a device's ingress, from the pins (doctor). */
  static netAttachedPinned(o: DatapathOptions, ifindex: number): boolean {
    return hookAttached("net", ifindex, o);
  }

  /**
   * The datapath programs at an interface's ingress, by name, from the kernel (tcx and clsact):
   * on a node that runs classic, any of them is one left behind, and it redirects past netfilter.
   */
  static programsAt(ifindex: number, netns?: string): string[] {
    const ours = new Set(["from_pod", "from_net", `${DATAPATH_FILTER_PREFIX}pod`, `${DATAPATH_FILTER_PREFIX}net`]);
    return ingressProgramNames(ifindex, netns).filter((n) => ours.has(n));
  }

  /**
   * Removes what any datapath left under `pinDir` and in `netns`: pinned links detached and
   * unpinned, programs and maps unpinned, gauze-datapath clsact filters deleted. In words.
   */
  static remove(pinDir: string, netns?: string): string[] {
    const removed: string[] = [];
    for (const rel of listPins(join(pinDir, "links"))) {
      const l = BpfLink.fromPin(join(pinDir, "links", rel));
      if (!l) continue;
      try { l.detach(); } catch { /* defunct */ }
      l.close();
    }
    removed.push(...removePins(pinDir).map((p) => `pin ${p}`));
    const nl = Rtnl.open(within(netns));
    try {
      for (const link of nl.links()) {
        let ours = false;
        for (const d of ["ingress", "egress"] as const) {
          for (const f of clsactAttached(link.index, d, netns)) {
            if (!f.name.startsWith(DATAPATH_FILTER_PREFIX)) continue;
            detachClsact({ ...f, ...within(netns) });
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
