// host-gw: zero overhead. Each other node's subnet is routed via that node's underlay address
// on the underlay interface; no encapsulation, so it needs the nodes on one L2 segment (the lab's
// underlay bridge is one). Pod MTU = underlay MTU.
import { type IpCommand, type IpRoute, ipBatch } from "../kernel/ip.ts";
import { parseCIDR, prefixesOverlap } from "../ipam/cidr.ts";
import type { Lease } from "../store/registry.ts";
import { type Backend, type BackendOptions, type ReconcileStats, registerBackend } from "./backend.ts";

export class HostGwBackend implements Backend {
  readonly type = "host-gw";
  readonly device: string;
  constructor(private readonly o: BackendOptions) {
    this.device = o.link.iface;
  }

  setup() {
    return { backendData: {}, podMtu: this.o.link.mtu };
  }

  activate(): void {
    // nothing of its own: the node's subnet lives on the pod bridge
  }

  reconcile(peers: Lease[]): ReconcileStats {
    const dev = this.o.link.iface;
    const network = parseCIDR(this.o.network)!.prefix;
    const want = peers.filter((p) => p.backendType === "host-gw").map((p) => ({ subnet: p.subnet, via: p.publicIp }));
    const [routes] = ipBatch([["route", "show", "dev", dev]]) as [IpRoute[]];
    const ours = routes.filter((r) => r.dst !== "default" && r.gateway && parseCIDR(r.dst) && prefixesOverlap(parseCIDR(r.dst)!.prefix, network));
    const cmds: IpCommand[] = [];
    let added = 0;
    let removed = 0;
    for (const w of want) {
      if (!ours.some((r) => r.dst === w.subnet && r.gateway === w.via)) { cmds.push(["route", "replace", w.subnet, "via", w.via, "dev", dev]); added++; }
    }
    for (const r of ours) {
      if (!want.some((w) => w.subnet === r.dst)) { cmds.push(["route", "del", r.dst, "dev", dev]); removed++; }
    }
    if (cmds.length) ipBatch(cmds);
    return { peers: want.length, added, removed, spawns: cmds.length ? 2 : 1 };
  }

  uninstall(): void {
    this.reconcile([]);
  }
}

registerBackend("host-gw", (o) => new HostGwBackend(o));
