// VXLAN, flannel-compatible: device gauze.<VNI> (VNI 1, UDP 8472, nolearning, local = node IP,
// MTU = underlay MTU - 50), the node's subnet address as a /32 on it, and for every other node
// one onlink route via its VTEP address, one permanent neighbour (VTEP address -> VTEP MAC) and
// one FDB entry (VTEP MAC -> node IP). No learning, no multicast: the agent is the control plane.
import { type FdbEntry, type IpLink, type IpNeigh, type IpRoute, IpError, bridgeBatch, ipBatch, type IpCommand } from "../kernel/ip.ts";
import { parseCIDR, formatIP } from "../ipam/cidr.ts";
import { setOffload } from "../kernel/ethtool.ts";
import type { Lease } from "../store/registry.ts";
import { type Backend, type BackendOptions, type ReconcileStats, registerBackend } from "./backend.ts";

export const VXLAN_OVERHEAD = 50; // outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14

/** A stable VTEP MAC from the node IP (0e:47 = "G", locally administered): the same after a re-create. */
export function vtepMacFor(nodeIp: string): string {
  const ip = parseCIDR(`${nodeIp}/32`)!.host.value;
  const b = [24n, 16n, 8n, 0n].map((s) => Number((ip >> s) & 0xffn).toString(16).padStart(2, "0"));
  return `0e:47:${b.join(":")}`;
}

export class VxlanBackend implements Backend {
  readonly type = "vxlan";
  readonly device: string;
  private mac = "";

  constructor(private readonly o: BackendOptions) {
    this.device = `gauze.${o.vni}`;
  }

  setup(): { backendData: Lease["backendData"]; podMtu: number } {
    const mtu = this.o.link.mtu - VXLAN_OVERHEAD;
    const current = this.read();
    const d = current?.linkinfo?.info_data as { id?: number; port?: number; local?: string; learning?: boolean } | undefined;
    const compatible = current && current.linkinfo?.info_kind === "vxlan" && d?.id === this.o.vni && d?.port === this.o.port && d?.local === this.o.link.ip && d?.learning === false;
    const cmds: IpCommand[] = [];
    if (current && !compatible) cmds.push(["link", "del", "dev", this.device]);
    if (!compatible) {
      cmds.push(["link", "add", this.device, "address", vtepMacFor(this.o.link.ip), "type", "vxlan", "id", String(this.o.vni), "dstport", String(this.o.port),
        "local", this.o.link.ip, "dev", this.o.link.iface, "nolearning"]);
    }
    if (!compatible || current?.mtu !== mtu) cmds.push(["link", "set", "dev", this.device, "mtu", String(mtu)]);
    if (!compatible || !(current?.flags ?? []).includes("UP")) cmds.push(["link", "set", "dev", this.device, "up"]);
    cmds.push(["link", "show", "dev", this.device]);
    const out = ipBatch(cmds);
    this.mac = (out[out.length - 1]![0] as IpLink).address ?? "";
    // With MASQUERADE --random-fully, checksum offload on the VXLAN device corrupts the outer
    // checksum of NATed packets, and connections stall for 63 s: compute checksums in software.
    setOffload(this.device, "tx-checksum-ip-generic", false);
    return { backendData: { vtepMac: this.mac }, podMtu: mtu };
  }

  private read(): IpLink | undefined {
    try {
      return (ipBatch([["link", "show", "dev", this.device]], {}, { details: true })[0] as IpLink[])[0];
    } catch (e) {
      if (e instanceof IpError && e.isNotFound) return undefined;
      throw e;
    }
  }

  activate(lease: Lease): void {
    const want = `${formatIP(parseCIDR(lease.subnet)!.prefix.ip)}/32`;
    const [links] = ipBatch([["addr", "show", "dev", this.device]]) as [IpLink[]];
    const have = (links[0]?.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
    const cmds: IpCommand[] = have.filter((a) => a !== want).map((a) => ["addr", "del", a, "dev", this.device]);
    if (!have.includes(want)) cmds.push(["addr", "add", want, "dev", this.device]);
    if (cmds.length) ipBatch(cmds);
  }

  reconcile(peers: Lease[]): ReconcileStats {
    const dev = this.device;
    const want = peers.filter((p) => p.backendType === "vxlan" && p.backendData.vtepMac).map((p) => {
      const net = parseCIDR(p.subnet)!.prefix;
      return { subnet: p.subnet, vtep: formatIP(net.ip), mac: p.backendData.vtepMac!.toLowerCase(), nodeIp: p.publicIp };
    });
    const t0 = performance.now();
    const [routes, neighs] = ipBatch([["route", "show", "dev", dev], ["neigh", "show", "dev", dev]]) as [IpRoute[], IpNeigh[]];
    const [fdb] = bridgeBatch([["fdb", "show", "dev", dev]]) as [FdbEntry[]];
    const readMs = performance.now() - t0;
    let spawns = 2;

    const fdbCmds: IpCommand[] = [];
    const ipCmds: IpCommand[] = [];
    const delRoutes: IpCommand[] = [];
    const delNeighs: IpCommand[] = [];
    let added = 0;
    let removed = 0;
    // Keyed sets, not nested scans: at 1000 peers a nested diff costs 3 million comparisons.
    const peerFdb = fdb.filter((f) => f.dst);
    const haveFdb = new Set(peerFdb.map((f) => `${f.mac.toLowerCase()} ${f.dst}`));
    const haveNeigh = new Set(neighs.filter((n) => (n.state ?? []).includes("PERMANENT")).map((n) => `${n.dst} ${n.lladdr?.toLowerCase()}`));
    const haveRoute = new Set(routes.filter((r) => (r.flags ?? []).includes("onlink")).map((r) => `${r.dst} ${r.gateway}`));
    const wantFdb = new Set(want.map((w) => `${w.mac} ${w.nodeIp}`));
    const wantVtep = new Set(want.map((w) => w.vtep));
    const wantSubnet = new Set(want.map((w) => w.subnet));
    for (const w of want) {
      if (!haveFdb.has(`${w.mac} ${w.nodeIp}`)) {
        fdbCmds.push(["fdb", "replace", w.mac, "dev", dev, "dst", w.nodeIp, "self", "permanent"]);
        added++;
      }
      if (!haveNeigh.has(`${w.vtep} ${w.mac}`)) {
        ipCmds.push(["neigh", "replace", w.vtep, "lladdr", w.mac, "dev", dev, "nud", "permanent"]);
        added++;
      }
      if (!haveRoute.has(`${w.subnet} ${w.vtep}`)) {
        ipCmds.push(["route", "replace", w.subnet, "via", w.vtep, "dev", dev, "onlink"]);
        added++;
      }
    }
    for (const r of routes) {
      if (r.gateway && !wantSubnet.has(r.dst)) { delRoutes.push(["route", "del", r.dst, "dev", dev]); removed++; }
    }
    for (const n of neighs) {
      if ((n.state ?? []).includes("PERMANENT") && !wantVtep.has(n.dst)) { delNeighs.push(["neigh", "del", n.dst, "dev", dev]); removed++; }
    }
    for (const f of peerFdb) {
      if (!wantFdb.has(`${f.mac.toLowerCase()} ${f.dst}`)) { fdbCmds.push(["fdb", "del", f.mac, "dev", dev, "dst", f.dst!, "self"]); removed++; }
    }
    // FDB first, then neighbours before routes: when a route appears, its path already works.
    if (fdbCmds.length) { bridgeBatch(fdbCmds); spawns++; }
    const all = [...ipCmds, ...delRoutes, ...delNeighs];
    if (all.length) { ipBatch(all); spawns++; }
    return { peers: want.length, added, removed, spawns, readMs };
  }

  uninstall(): void {
    try {
      ipBatch([["link", "del", "dev", this.device]]);
    } catch (e) {
      if (!(e instanceof IpError && e.isNotFound)) throw e;
    }
  }
}

registerBackend("vxlan", (o) => new VxlanBackend(o));
