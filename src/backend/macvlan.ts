// macvlan: zero tunnel bytes and no routing at all. Pods get a macvlan of the node's uplink (the
// plugin's "mode": "macvlan") and addresses from this node's lease, which lies inside the
// underlay's own L2 subnet; every pod is a station on that segment, so other nodes' pods are
// on-link and need no route, ARP entry or FDB entry from the agent. The price: every node must
// be on one L2 segment, the pod network must be carved out of the underlay subnet, and a node
// cannot reach its own pods (the kernel keeps a macvlan's parent and children apart; doctor's
// overlay.macvlan-host check explains it). Pod MTU = underlay MTU.
import { type Prefix, formatPrefix, parseCIDR, prefixContains } from "../net/cidr.ts";
import type { Rtnl } from "../kernel/netlink/index.ts";
import type { Lease } from "../store/registry.ts";
import { type Backend, type BackendOptions, type KernelView, type Plan, type PodAttachment, BackendConfigError, registerBackend } from "./backend.ts";

export class MacvlanBackend implements Backend {
  readonly type = "macvlan";
  readonly device: string;
  readonly overhead = 0;
  readonly options = {};
  private readonly underlay: Prefix;
  private gateway = "";

  constructor(private readonly o: BackendOptions) {
    for (const k of Object.keys(o.config)) {
      if (k !== "Type") throw new BackendConfigError(k, "is not an option of the macvlan backend", "remove it; macvlan takes no options");
    }
    this.device = o.link.iface;
    const under = o.link.prefixLen !== undefined ? parseCIDR(`${o.link.ip}/${o.link.prefixLen}`)?.prefix : undefined;
    const net = o.network;
    if (!under || !net) throw new BackendConfigError("Type", `macvlan needs the node's underlay subnet (${o.link.iface} has no IPv4 prefix)`, "give the node's uplink an address with its prefix");
    if (net.bits < under.bits || !prefixContains(under, net.ip)) {
      throw new BackendConfigError("Type", `macvlan puts pods on the node's L2 subnet ${formatPrefix(under)}, but Network ${formatPrefix(net)} is not inside it`,
        `set Network to a part of ${formatPrefix(under)} that no node or other host uses, e.g. the upper half`);
    }
    this.underlay = under;
  }

  setup(nl: Rtnl): { backendData: Lease["backendData"]; podMtu: number } {
    const r = nl.routes(4).find((x) => x.dst === "0.0.0.0/0" && x.table === 254 && x.gateway && x.oif === this.o.link.index);
    if (!r?.gateway) throw new Error(`macvlan: no IPv4 default route via ${this.o.link.iface}: pods need the underlay's router as their gateway`);
    this.gateway = r.gateway;
    return { backendData: {}, podMtu: this.o.link.mtu };
  }

  /** What the plugin's config and the subnet file say for pods on this node. */
  podAttachment(): PodAttachment {
    return { mode: "macvlan", master: this.o.link.iface, underlay: formatPrefix(this.underlay), underlayGateway: this.gateway };
  }

  activate(): void {
    // nothing of its own: pods join the underlay directly
  }

  read(): KernelView {
    return { routes: [], neighbours: [], fdb: [] };
  }

  needsSetup(): boolean {
    return false;
  }

  plan(_view: KernelView, leases: Lease[]): Plan {
    // Other nodes' pods are on-link: nothing to program. Leases of another backend are named.
    const skipped = leases.filter((l) => l.backendType !== "macvlan").map((l) => ({ node: l.node, subnet: l.subnet, why: `backend ${l.backendType}, not macvlan` }));
    return { changes: [], peers: leases.length - skipped.length, skipped, wanted: new Set() };
  }

  concerns(): boolean {
    return false;
  }

  uninstall(): void {
    // nothing of its own
  }
}

registerBackend("macvlan", (o) => new MacvlanBackend(o));
