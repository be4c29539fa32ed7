// host-gw: zero overhead. Each other node's subnet is routed via that node's underlay address
// on the underlay interface; no encapsulation, so it needs the nodes on one L2 segment (the lab's
// underlay bridge is one). A peer outside this node's underlay subnet cannot be reached this way:
// its lease is skipped with the reason. Pod MTU = underlay MTU.
import { type Prefix, parseCIDR, prefixMatcher } from "../net/cidr.ts";
import type { Link, Rtnl } from "../kernel/netlink/index.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";
import type { Lease } from "../store/registry.ts";
import {
  type Backend, type BackendOptions, type KernelView, type Plan, BackendConfigError, GAUZE_ROUTE_PROTOCOL, emptyPlan, addRouteChange,
  delRouteChange, registerBackend, routeInside, routeKey, subnetKey,
} from "./backend.ts";

export class HostGwBackend implements Backend {
  readonly type = "host-gw";
  readonly device: string;
  readonly overhead = 0;
  readonly options = {};
  private readonly network: Prefix;
  private readonly family: 4 | 6;
  /** Whether a node IP is on this node's underlay subnet (host-gw's next hops must be). */
  private readonly onUnderlay?: (ip: string) => boolean;

  constructor(private readonly o: BackendOptions) {
    for (const k of Object.keys(o.config)) {
      if (k !== "Type") throw new BackendConfigError(k, "is not an option of the host-gw backend", "remove it; host-gw takes no options");
    }
    this.device = o.link.iface;
    this.family = o.family ?? 4;
    this.network = o.network;
    const underlay = o.link.prefixLen !== undefined ? parseCIDR(`${o.link.ip}/${o.link.prefixLen}`)?.prefix : undefined;
    if (underlay) this.onUnderlay = prefixMatcher(underlay);
  }

  setup(): { backendData: Lease["backendData"]; podMtu: number } {
    return { backendData: {}, podMtu: this.o.link.mtu };
  }

  activate(): void {
    // nothing of its own: the node's subnet lives on the pod bridge
  }

  read(nl: Rtnl): KernelView {
    const device = nl.linkByIndex(this.o.link.index);
    return { ...(device ? { device } : {}), routes: device ? nl.routes(this.family, device) : [], neighbours: [], fdb: [] };
  }

  needsSetup(): boolean {
    return false; // the underlay is the node's, not gauze's
  }

  plan(view: KernelView, leases: Lease[]): Plan {
    const empty = emptyPlan();
    const { changes, skipped, wanted } = empty;
    const dev = view.device;
    if (!dev) return empty;
    const peers: Lease[] = [];
    for (const p of leases) {
      if (p.backendType !== "host-gw") { skipped.push({ node: p.node, subnet: p.subnet, why: `backend ${p.backendType}, not host-gw` }); continue; }
      if (this.onUnderlay && !this.onUnderlay(p.publicIp)) {
        skipped.push({ node: p.node, subnet: p.subnet, why: `its node IP ${p.publicIp} is outside this node's underlay subnet ${this.o.link.ip}/${this.o.link.prefixLen}: host-gw needs every node on one L2 segment (use vxlan)` });
        continue;
      }
      peers.push(p);
      wanted.add(subnetKey(p.subnet));
      wanted.add(routeKey(p.subnet, p.publicIp));
    }
    const have = new Set(view.routes.map((r) => routeKey(r.dst, r.gateway ?? "")));
    for (const p of peers) {
      if (!have.has(routeKey(p.subnet, p.publicIp))) changes.push(addRouteChange(p.node, p.subnet, p.publicIp, dev, false));
    }
    for (const r of view.routes) {
      // Only routes gauze made; the underlay's own routes are never touched.
      if (r.protocol === GAUZE_ROUTE_PROTOCOL && !wanted.has(subnetKey(r.dst)) && routeInside(this.network, r.dst)) {
        changes.push(delRouteChange(r, dev));
      }
    }
    return { changes, peers: peers.length, skipped, wanted };
  }

  concerns(e: KernelEvent, dev: Link | undefined, wanted: Set<string>): boolean {
    if (e.kind !== "route" || !dev || e.route.oif !== dev.index || e.route.family !== 4) return false;
    const r = e.route;
    if (e.op === "new" && wanted.has(routeKey(r.dst, r.gateway ?? ""))) return false;
    return r.protocol === GAUZE_ROUTE_PROTOCOL || wanted.has(subnetKey(r.dst));
  }

  uninstall(nl: Rtnl): void {
    const view = this.read(nl);
    const plan = this.plan(view, []);
    nl.apply(plan.changes.flatMap((c) => (c.request ? [c.request] : [])));
  }
}

registerBackend("host-gw", (o) => new HostGwBackend(o));
