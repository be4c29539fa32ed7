// VXLAN, flannel-compatible: device gauze.<VNI> (VNI 1, UDP 8472, nolearning, local = node IP,
// MTU = underlay MTU - 50), the node's subnet address as a /32 on it, and for every other node
// one onlink route via its VTEP address, one permanent neighbour (VTEP address -> VTEP MAC) and
// one FDB entry (VTEP MAC -> node IP). No learning, no multicast: the agent is the control plane.
// With DirectRouting (flannel's option), a peer on this node's own underlay subnet is routed
// straight via its node IP on the underlay interface, with no encapsulation (as host-gw does);
// peers elsewhere keep the tunnel. One lab with two underlay subnets shows both at once.
import { type Prefix, formatIP, parseCIDR, parseIP, prefixMatcher } from "../net/cidr.ts";
import { setOffload } from "../kernel/ethtool.ts";
import { kernelVersion } from "../kernel/sysctl.ts";

import {
  type Link, type Rtnl, addVxlan, delFdb, delLink, delNeigh, isOnlink, isPermanent, replaceFdb, replaceNeigh, setLink,
} from "../kernel/netlink/index.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";
import type { Lease } from "../store/registry.ts";
import {
  type Backend, type BackendOptions, type Change, type KernelView, type Plan, BackendConfigError, GAUZE_ROUTE_PROTOCOL, emptyPlan, addRouteChange,
  delRouteChange, registerBackend, setSubnetAddress, routeInside, routeKey, subnetKey,
} from "./backend.ts";
import { NUD, NTF } from "../kernel/netlink/uapi.ts";
import { parseMac } from "../kernel/netlink/wire.ts";

/** Whether this kernel has the VXLAN checksum bug with NAT --random-fully (fixed in 5.7, and in 5.6.13, 5.4.41, 4.19.123, 4.14.181). */
export function checksumOffloadBroken(v: [number, number, number] | undefined): boolean {
  if (!v) return true; // unknown: the safe side
  const [a, b, c] = v;
  const fixedIn: Record<string, number> = { "5.6": 13, "5.4": 41, "4.19": 123, "4.14": 181 };
  if (a > 5 || (a === 5 && b >= 7)) return false;
  const patch = fixedIn[`${a}.${b}`];
  return patch === undefined || c < patch;
}

export const VXLAN_OVERHEAD = 50; // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
export const VXLAN6_OVERHEAD = 70; // outer IPv6 40 + UDP 8 + VXLAN 8 + inner Ethernet 14

export type VxlanOptions = { vni: number; port: number; directRouting: boolean };

const KNOWN = new Set(["Type", "VNI", "Port", "DirectRouting"]);

/** flannel's defaults and rules for the Backend block: VNI 1..16777215 (default 1), Port (default 8472). */
export function parseVxlanOptions(c: Record<string, unknown>): VxlanOptions {
  for (const k of Object.keys(c)) {
    if (!KNOWN.has(k)) throw new BackendConfigError(k, "is not an option of the vxlan backend", `remove it; vxlan takes ${[...KNOWN].join(", ")}`);
  }
  const vni = c.VNI ?? 1;
  if (typeof vni !== "number" || !Number.isInteger(vni) || vni < 1 || vni > 0xffffff) throw new BackendConfigError("VNI", `${JSON.stringify(vni)} is not a VNI`, "use an integer from 1 to 16777215");
  const port = c.Port ?? 8472;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) throw new BackendConfigError("Port", `${JSON.stringify(port)} is not a UDP port`, "use an integer from 1 to 65535 (flannel's default is 8472)");
  const direct = c.DirectRouting ?? false;
  if (typeof direct !== "boolean") throw new BackendConfigError("DirectRouting", `${JSON.stringify(direct)} is not true or false`, "write \"DirectRouting\": true to route peers on this node's subnet without the tunnel");
  return { vni, port, directRouting: direct };
}

/**
 * A stable VTEP MAC from the node IP: the same after a re-create. Locally administered, 0e:47
 * ("G") and the IPv4 address's four bytes; over IPv6, 0e:36 ("6") and its last four.
 */
export function vtepMacFor(nodeIp: string): string {
  const ip = parseIP(nodeIp)!;
  const b = [24n, 16n, 8n, 0n].map((s) => Number((ip.value >> s) & 0xffn).toString(16).padStart(2, "0"));
  return `0e:${ip.family === 4 ? "47" : "36"}:${b.join(":")}`;
}

interface Peer {
  node: string;
  subnet: string;
  vtep: string;
  mac: string;
  nodeIp: string;
  /** This peer's keys in Plan.wanted (computed once per lease, not once per pass). */
  keys: { subnet: string; route: string; neigh: string; fdb: string; direct: string };
}

const neighKey = (dst: string, mac: string) => `n ${dst} ${mac}`;
const fdbKey = (mac: string, dst: string) => `f ${mac} ${dst}`;

export class VxlanBackend implements Backend {
  readonly type = "vxlan";
  readonly device: string;
  readonly overhead: number;
  readonly options: VxlanOptions;
  private readonly network: Prefix;
  /** The family of the pod network and underlay this instance carries: IPv6 has its own device. */
  private readonly family: 4 | 6;
  /** Whether an address is inside the pod network (made once: asked for every neighbour on every pass). */
  private readonly inNetwork: (ip: string) => boolean;
  /**
   * What each lease means to this backend, worked out once per lease object: the registries
   * hand out the same objects until a lease changes, and a pass at a thousand peers then costs
   * map lookups rather than a thousand parses and key strings.
   */
  private readonly peerOf = new WeakMap<Lease, Peer | string>();
  /** DirectRouting: whether a node IP is on this node's underlay subnet (then no tunnel is needed). */
  private readonly onUnderlay?: (ip: string) => boolean;
  private readonly underlay: { index: number; name: string };

  constructor(private readonly o: BackendOptions) {
    this.options = parseVxlanOptions(o.config);
    this.family = o.family ?? 4;
    this.device = this.family === 4 ? `gauze.${this.options.vni}` : `gauze6.${this.options.vni}`;
    this.overhead = this.family === 4 ? VXLAN_OVERHEAD : VXLAN6_OVERHEAD;
    this.network = o.network;
    this.inNetwork = prefixMatcher(this.network);
    this.underlay = { index: o.link.index, name: o.link.iface };
    const sub = o.link.prefixLen !== undefined ? parseCIDR(`${o.link.ip}/${o.link.prefixLen}`)?.prefix : undefined;
    if (this.options.directRouting && sub) this.onUnderlay = prefixMatcher(sub);
  }

  /** A peer this node reaches without the tunnel (DirectRouting, same underlay subnet). */
  private direct(p: Peer): boolean {
    return !!this.onUnderlay && this.onUnderlay(p.nodeIp);
  }

  private compatible(l: Link | undefined): l is Link {
    const v = l?.vxlan;
    return l?.kind === "vxlan" && v?.vni === this.options.vni && v.port === this.options.port && v.local === this.o.link.ip && v.learning === false;
  }

  needsSetup(view: KernelView): boolean {
    return !this.compatible(view.device) || !view.device.up || view.device.mtu !== this.o.link.mtu - this.overhead;
  }

  setup(nl: Rtnl): { backendData: Lease["backendData"]; podMtu: number } {
    const mtu = this.o.link.mtu - this.overhead;
    const current = nl.link(this.device);
    const compatible = this.compatible(current);
    if (current && !compatible) nl.run([delLink(current)]);
    if (!compatible) {
      nl.run([addVxlan({
        name: this.device, vni: this.options.vni, port: this.options.port, local: this.o.link.ip, dev: { index: this.o.link.index, name: this.o.link.iface },
        learning: false, mac: vtepMacFor(this.o.link.ip), mtu, up: true,
      })]);
    } else if (current.mtu !== mtu || !current.up) {
      nl.run([setLink(current, { mtu, up: true })]);
    }
    const dev = nl.link(this.device);
    if (!dev) throw new Error(`${this.device} vanished right after it was set up`);
    // Kernels before 5.7 corrupt the outer checksum of VXLAN packets NATed with MASQUERADE
    // --random-fully (connections stall for 63 s); there, checksums are computed in software.
    // Elsewhere the offload stays on: without it the kernel cannot segment TCP on the device,
    // and pod-to-pod throughput falls to a fifth (bench: 2.0 against 9.5 Gbit/s). flannel keeps
    // it on too; this also turns it back on where an older gauze turned it off.
    setOffload(this.device, "tx-checksum-ip-generic", !checksumOffloadBroken(kernelVersion()));
    return { backendData: { vtepMac: dev.mac ?? vtepMacFor(this.o.link.ip) }, podMtu: mtu };
  }

  activate(nl: Rtnl, lease: Lease): void {
    setSubnetAddress(nl, this.device, lease);
  }

  read(nl: Rtnl): KernelView {
    const device = nl.link(this.device);
    if (!device) return { routes: [], neighbours: [], fdb: [] };
    // One dump for both: the device's routes, and gauze's on the underlay interface
    // (DirectRouting's, or ones host-gw left before a switch to vxlan: the plan removes those
    // no peer wants).
    const routes = nl.routes(this.family).filter((r) => r.oif === device.index || (r.oif === this.underlay.index && r.protocol === GAUZE_ROUTE_PROTOCOL));
    return { device, routes, neighbours: nl.neighbours(this.family, device), fdb: nl.fdb(device) };
  }

  private peersOf(leases: Lease[], skipped: Plan["skipped"]): Peer[] {
    const out: Peer[] = [];
    for (const l of leases) {
      let p = this.peerOf.get(l);
      if (p === undefined) {
        p = toPeer(l);
        this.peerOf.set(l, p);
      }
      if (typeof p === "string") skipped.push({ node: l.node, subnet: l.subnet, why: p });
      else out.push(p);
    }
    return out;
  }

  plan(view: KernelView, leases: Lease[]): Plan {
    const empty = emptyPlan();
    const { skipped, wanted } = empty;
    const dev = view.device;
    if (!dev) return empty;
    const all = this.peersOf(leases, skipped);
    const directPeers = all.filter((p) => this.direct(p));
    const peers = this.onUnderlay ? all.filter((p) => !this.direct(p)) : all;
    for (const p of peers) {
      wanted.add(p.keys.subnet);
      wanted.add(p.keys.route);
      wanted.add(p.keys.neigh);
      wanted.add(p.keys.fdb);
    }
    for (const p of directPeers) {
      wanted.add(p.keys.subnet);
      wanted.add(p.keys.direct);
    }
    // Keyed sets, not nested scans: at 1000 peers a nested diff costs 3 million comparisons.
    const haveRoute = new Set<string>();
    const haveDirect = new Set<string>();
    for (const r of view.routes) {
      if (r.oif === dev.index && isOnlink(r)) haveRoute.add(routeKey(r.dst, r.gateway ?? ""));
      else if (r.oif === this.underlay.index) haveDirect.add(routeKey(r.dst, r.gateway ?? ""));
    }
    const haveNeigh = new Set<string>();
    for (const n of view.neighbours) if (isPermanent(n)) haveNeigh.add(neighKey(n.dst, n.lladdr ?? ""));
    const haveFdb = new Set<string>();
    for (const f of view.fdb) if (f.dst) haveFdb.add(fdbKey(f.mac, f.dst));
    const fdbChanges: Change[] = [];
    const neighChanges: Change[] = [];
    const routeChanges: Change[] = [];
    for (const p of peers) {
      if (!haveFdb.has(p.keys.fdb)) {
        fdbChanges.push({
          op: "add", peer: p.node, text: `FDB ${p.mac} dst ${p.nodeIp}`, request: replaceFdb(dev, p.mac, p.nodeIp),
          entry: { kind: "fdb", fdb: { index: dev.index, mac: p.mac, dst: p.nodeIp, state: NUD.PERMANENT, flags: NTF.SELF } },
        });
      }
      if (!haveNeigh.has(p.keys.neigh)) {
        neighChanges.push({
          op: "add", peer: p.node, text: `neighbour ${p.vtep} lladdr ${p.mac}`, request: replaceNeigh(dev, p.vtep, p.mac),
          entry: { kind: "neigh", neigh: { family: this.family, index: dev.index, dst: p.vtep, lladdr: p.mac, state: NUD.PERMANENT, flags: 0 } },
        });
      }
      if (!haveRoute.has(p.keys.route)) routeChanges.push(addRouteChange(p.node, p.subnet, p.vtep, dev, true));
    }
    // A route replaces whatever route its destination had: a peer moving between the tunnel and
    // the direct path changes over in one step.
    for (const p of directPeers) {
      if (!haveDirect.has(p.keys.direct)) routeChanges.push(addRouteChange(p.node, p.subnet, p.nodeIp, this.underlay, false));
    }
    const wantVtep = new Set<string>();
    const byMac = new Map<string, string>();
    for (const p of peers) {
      wantVtep.add(p.vtep);
      byMac.set(p.mac, p.node);
    }
    const stale: Change[] = [];
    for (const r of view.routes) {
      // Only routes gauze made: someone else's routes on the device are left alone.
      if (r.protocol === GAUZE_ROUTE_PROTOCOL && !wanted.has(subnetKey(r.dst)) && routeInside(this.network, r.dst)) {
        stale.push(delRouteChange(r, r.oif === this.underlay.index ? this.underlay : dev));
      }
    }
    for (const n of view.neighbours) {
      if (isPermanent(n) && !wantVtep.has(n.dst) && this.inNetwork(n.dst)) {
        stale.push({ op: "del", peer: "", text: `neighbour ${n.dst} lladdr ${n.lladdr ?? "-"}`, request: delNeigh(dev, n.dst), entry: { kind: "neigh", neigh: n } });
      }
    }
    for (const f of view.fdb) {
      if (f.dst && !wanted.has(fdbKey(f.mac, f.dst))) {
        stale.push({ op: "del", peer: byMac.get(f.mac) ?? "", text: `FDB ${f.mac} dst ${f.dst}`, request: delFdb(dev, f.mac, f.dst), entry: { kind: "fdb", fdb: f } });
      }
    }
    // FDB first, then neighbours before routes: when a route appears, its path already works.
    // Stale entries go last, after their replacements are in.
    return { changes: [...fdbChanges, ...neighChanges, ...routeChanges, ...stale], peers: peers.length + directPeers.length, skipped, wanted };
  }

  concerns(e: KernelEvent, dev: Link | undefined, wanted: Set<string>): boolean {
    switch (e.kind) {
      case "link":
        // The device deleted, set down or renamed away, or one of its name appeared (re-created by hand).
        return e.link.name === this.device || (dev !== undefined && e.link.index === dev.index);
      case "route": {
        const r = e.route;
        if (r.family !== this.family) return false;
        if (this.onUnderlay && r.oif === this.underlay.index) {
          // A direct route (DirectRouting): ours if gauze made it or it is to a peer's subnet.
          if (e.op === "new" && wanted.has(routeKey(r.dst, r.gateway ?? ""))) return false;
          return r.protocol === GAUZE_ROUTE_PROTOCOL || wanted.has(subnetKey(r.dst));
        }
        if (!dev || r.oif !== dev.index) return false;
        if (e.op === "new" && isOnlink(r) && wanted.has(routeKey(r.dst, r.gateway ?? ""))) return false;
        // Ours (made by gauze, or to a peer's subnet); someone else's other routes are left alone.
        return r.protocol === GAUZE_ROUTE_PROTOCOL || wanted.has(subnetKey(r.dst));
      }
      case "neigh":
        if (!dev || e.neigh.index !== dev.index) return false;
        return !(e.op === "new" && isPermanent(e.neigh) && wanted.has(neighKey(e.neigh.dst, e.neigh.lladdr ?? "")));
      case "fdb":
        if (!dev || e.fdb.index !== dev.index || !e.fdb.dst) return false;
        return !(e.op === "new" && wanted.has(fdbKey(e.fdb.mac, e.fdb.dst)));
      default:
        return false;
    }
  }

  uninstall(nl: Rtnl): void {
    // Direct routes (DirectRouting, now or under an earlier config) live on the underlay: gauze's only.
    const direct = nl.routes(this.family, this.underlay).filter((r) => r.protocol === GAUZE_ROUTE_PROTOCOL && routeInside(this.network, r.dst));
    nl.apply(direct.map((r) => delRouteChange(r, this.underlay).request!));
    const [e] = nl.apply([delLink(this.device)]);
    if (e && !e.notFound) throw e;
  }
}

/** A lease as a VXLAN peer, or why it cannot be one. */
function toPeer(l: Lease): Peer | string {
  if (l.backendType !== "vxlan") return `backend ${l.backendType}, not vxlan`;
  if (!l.backendData.vtepMac) return "no VTEP MAC in its lease";
  const macBytes = parseMac(l.backendData.vtepMac);
  if (!macBytes || (macBytes[0]! & 1) === 1 || macBytes.every((b) => b === 0)) return `VTEP MAC ${JSON.stringify(l.backendData.vtepMac)} is not a unicast MAC address`;
  const net = parseCIDR(l.subnet);
  if (!net) return "its subnet is not a CIDR";
  const vtep = formatIP(net.prefix.ip);
  const mac = l.backendData.vtepMac.toLowerCase();
  return {
    node: l.node, subnet: l.subnet, vtep, mac, nodeIp: l.publicIp,
    keys: { subnet: subnetKey(l.subnet), route: routeKey(l.subnet, vtep), neigh: neighKey(vtep, mac), fdb: fdbKey(mac, l.publicIp), direct: routeKey(l.subnet, l.publicIp) },
  };
}

registerBackend("vxlan", (o) => new VxlanBackend(o));
