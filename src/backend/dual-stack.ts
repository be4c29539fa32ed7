// Dual-stack (EnableIPv6): one backend instance per family, run as one backend. The IPv6
// instance has its own device (gauze6.<VNI> for VXLAN, over the node's IPv6 underlay address)
// and sees each lease through its IPv6 half: the IPv6 subnet, the IPv6 underlay address and the
// IPv6 VTEP MAC. A peer whose IPv6 half is missing or wrong is skipped on IPv6 only, with the
// reason; its IPv4 side is unaffected.
import type { Link, Rtnl } from "../kernel/netlink/index.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";
import { type Prefix, formatPrefix } from "../net/cidr.ts";
import type { Lease } from "../store/registry.ts";
import { validateLeases } from "../store/validate.ts";
import { type Backend, type KernelView, type NodeLink, type Plan, BackendConfigError, backendTypes, createBackend } from "./backend.ts";

/** Backends that carry an IPv6 pod network next to the IPv4 one. */
export const IPV6_BACKENDS: readonly string[] = ["vxlan", "host-gw"];

/** A lease as the IPv6 instance sees it; undefined when the lease has no IPv6 half. */
export function ipv6Half(l: Lease): Lease | undefined {
  if (!l.ipv6Subnet) return undefined;
  return {
    subnet: l.ipv6Subnet, node: l.node, publicIp: l.publicIpv6 ?? "", backendType: l.backendType,
    backendData: l.backendData.v6VtepMac ? { vtepMac: l.backendData.v6VtepMac } : {}, expiresAt: l.expiresAt, ...(l.key ? { key: l.key } : {}),
  };
}

export interface Ipv6Network {
  network: Prefix;
  subnetLen: number;
  /** This node's name: its own lease is not a peer. */
  self: string;
}

export class DualStackBackend implements Backend {
  readonly type: string;
  readonly device: string;
  readonly overhead: number;
  readonly options: Record<string, unknown>;
  /** The IPv6 device as last read: kernel events are matched against it. */
  private device6?: Link;
  /** Each lease's IPv6 half, made once per lease object (the registries hand out the same objects until a lease changes). */
  private readonly halves = new WeakMap<Lease, Lease | undefined>();

  constructor(readonly v4: Backend, readonly v6: Backend, private readonly net6: Ipv6Network) {
    this.type = v4.type;
    this.device = v4.device;
    this.overhead = v4.overhead;
    this.options = { ...v4.options, ipv6: { device: v6.device, overhead: v6.overhead, network: formatPrefix(net6.network), subnetLen: net6.subnetLen } };
  }

  setup(nl: Rtnl): { backendData: Lease["backendData"]; podMtu: number } {
    const a = this.v4.setup(nl);
    const b = this.v6.setup(nl);
    // One pod interface carries both families: it takes the smaller of the two tunnels' MTUs.
    return { backendData: { ...a.backendData, ...(b.backendData.vtepMac ? { v6VtepMac: b.backendData.vtepMac } : {}) }, podMtu: Math.min(a.podMtu, b.podMtu) };
  }

  activate(nl: Rtnl, lease: Lease): void {
    this.v4.activate(nl, lease);
    const half = ipv6Half(lease);
    if (!half) throw new Error(`this node's lease ${lease.subnet} has no IPv6 subnet, and the network config has EnableIPv6`);
    this.v6.activate(nl, half);
  }

  read(nl: Rtnl): KernelView {
    const a = this.v4.read(nl);
    const b = this.v6.read(nl);
    this.device6 = b.device;
    return { ...(a.device ? { device: a.device } : {}), ...(b.device ? { device6: b.device } : {}), routes: [...a.routes, ...b.routes], neighbours: [...a.neighbours, ...b.neighbours], fdb: [...a.fdb, ...(b.device && b.device.index !== a.device?.index ? b.fdb : [])] };
  }

  /** The merged view as each instance reads it. */
  private split(view: KernelView): [KernelView, KernelView] {
    const i4 = view.device?.index;
    const i6 = view.device6?.index;
    return [
      { ...(view.device ? { device: view.device } : {}), routes: view.routes.filter((r) => r.family === 4), neighbours: view.neighbours.filter((n) => n.family === 4), fdb: view.fdb.filter((f) => f.index === i4) },
      { ...(view.device6 ? { device: view.device6 } : {}), routes: view.routes.filter((r) => r.family === 6), neighbours: view.neighbours.filter((n) => n.family === 6), fdb: view.fdb.filter((f) => f.index === i6) },
    ];
  }

  needsSetup(view: KernelView): boolean {
    const [a, b] = this.split(view);
    return this.v4.needsSetup(a) || this.v6.needsSetup(b);
  }

  plan(view: KernelView, leases: Lease[]): Plan {
    const [a, b] = this.split(view);
    this.device6 = view.device6;
    const p4 = this.v4.plan(a, leases);
    const skipped6: Plan["skipped"] = [];
    const halves: Lease[] = [];
    const byNode = new Map<string, Lease>();
    for (const l of leases) {
      let h = this.halves.get(l);
      if (!this.halves.has(l)) this.halves.set(l, (h = ipv6Half(l)));
      if (!h) skipped6.push({ node: l.node, subnet: l.subnet, why: "IPv6: its lease has no IPv6 subnet (its agent runs without EnableIPv6?): reached over IPv4 only" });
      else {
        halves.push(h);
        byNode.set(l.node, l);
      }
    }
    // The IPv6 half passes the same checks as any lease, against the IPv6 network.
    const checked = validateLeases(halves, { network: this.net6.network, subnetLen: this.net6.subnetLen, self: this.net6.self, underlayFamily: 6, backendTypes: backendTypes() });
    for (const x of checked.invalid) skipped6.push({ node: x.node, subnet: byNode.get(x.node)?.subnet ?? x.subnet, why: `IPv6: ${x.why}` });
    const p6 = this.v6.plan(b, checked.valid);
    for (const x of p6.skipped) skipped6.push({ node: x.node, subnet: byNode.get(x.node)?.subnet ?? x.subnet, why: `IPv6: ${x.why}` });
    return { changes: [...p4.changes, ...p6.changes], peers: p4.peers, skipped: [...p4.skipped, ...skipped6], wanted: new Set([...p4.wanted, ...p6.wanted]) };
  }

  concerns(e: KernelEvent, device: Link | undefined, wanted: Set<string>): boolean {
    return this.v4.concerns(e, device, wanted) || this.v6.concerns(e, this.device6, wanted);
  }

  uninstall(nl: Rtnl): void {
    this.v4.uninstall(nl);
    this.v6.uninstall(nl);
  }
}

/** The devices a backend runs (dual-stack: the IPv4 and the IPv6 one). */
export function backendDevices(b: Backend): string[] {
  return b instanceof DualStackBackend ? [b.v4.device, b.v6.device] : [b.device];
}

/**
 * The backend a network config asks for: one instance, or with EnableIPv6 one per family.
 * `link6` is the node's IPv6 underlay link (undefined: not dual-stack).
 */
export function createNetworkBackend(o: {
  type: string; link: NodeLink; network: Prefix; config: Record<string, unknown>; root?: string;
  ipv6?: Ipv6Network & { link: NodeLink };
}): Backend {
  if (o.ipv6 && !IPV6_BACKENDS.includes(o.type)) {
    throw new BackendConfigError("Type", `${o.type} does not carry an IPv6 pod network (EnableIPv6 is true)`, `use ${IPV6_BACKENDS.join(" or ")} for dual-stack, or set EnableIPv6 to false`);
  }
  const v4 = createBackend(o.type, { link: o.link, network: o.network, config: o.config, ...(o.root !== undefined ? { root: o.root } : {}) });
  if (!o.ipv6) return v4;
  const v6 = createBackend(o.type, { link: o.ipv6.link, network: o.ipv6.network, config: o.config, family: 6, ...(o.root !== undefined ? { root: o.root } : {}) });
  return new DualStackBackend(v4, v6, o.ipv6);
}
