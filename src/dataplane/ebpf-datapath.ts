// The eBPF datapath's model: what its two maps should hold on one node, computed from what the
// node knows (pure, unit-testable), and the difference to what the kernel holds. `endpoints`:
// every address of every pod attachment on this node -> its host veth, its MAC, the gateway
// MAC, and whether it must take the classic path (the policy hook). `remotes`: every other
// node's pod subnet (IPv4, and IPv6 when dual-stack) -> the next hop and device the backend
// routes it by: host-gw (and VXLAN's DirectRouting peers) the peer's node IP out of the
// underlay link; VXLAN the peer's VTEP address (its subnet's first address, flannel's
// convention) into the tunnel device, whose permanent neighbour and FDB entry the backend keeps,
// so the kernel encapsulates exactly as on the classic path. Peers the backend would skip (no
// underlay address of that family, a peer off the underlay subnet for host-gw) are left out:
// their packets take the classic path, which says why they go nowhere.
import { type Endpoint, type Remote, EP_CLASSIC } from "../kernel/bpf/datapath.ts";
import { formatIP, parseCIDR, prefixMatcher } from "../net/cidr.ts";
import type { Lease } from "../store/registry.ts";

export type DatapathKind = "classic" | "ebpf";
export const DATAPATHS: readonly DatapathKind[] = ["classic", "ebpf"];

/** A pod attachment as the datapath needs it. */
export interface EndpointSource {
  ips: readonly string[];
  ifindex: number;
  mac: string;
  gwMac: string;
  /** Send this pod the classic way (a NetworkPolicy isolates it: its rules live in nftables). */
  classic?: boolean;
}

/** Addresses with or without their prefix length ("10.244.0.5/24" or "10.244.0.5") -> one entry each. */
export function endpointsFor(pods: readonly EndpointSource[]): Map<string, Endpoint> {
  const out = new Map<string, Endpoint>();
  for (const p of pods) {
    for (const a of p.ips) {
      const ip = a.includes("/") ? a.slice(0, a.indexOf("/")) : a;
      out.set(ip, { ifindex: p.ifindex, flags: p.classic ? EP_CLASSIC : 0, mac: p.mac.toLowerCase(), gwMac: p.gwMac.toLowerCase() });
    }
  }
  return out;
}

export interface RemoteDevices {
  backend: string;
  directRouting?: boolean;
  /** The underlay link, and this node's underlay subnets (host-gw and DirectRouting reach only peers on them). */
  underlay: { ifindex: number; subnet?: string; subnet6?: string };
  /** The VXLAN devices' ifindexes (gauze.<VNI>, gauze6.<VNI>). */
  tunnel?: number;
  tunnel6?: number;
}

/** Backends whose peers the datapath reaches by redirect; others (macvlan, wireguard) keep the classic path. */
export const EBPF_BACKENDS: readonly string[] = ["host-gw", "vxlan"];

export function remotesFor(leases: readonly Lease[], self: string, d: RemoteDevices): Map<string, Remote> {
  const out = new Map<string, Remote>();
  if (!EBPF_BACKENDS.includes(d.backend)) return out;
  const on4 = d.underlay.subnet ? prefixMatcher(parseCIDR(d.underlay.subnet)!.prefix) : undefined;
  const on6 = d.underlay.subnet6 ? prefixMatcher(parseCIDR(d.underlay.subnet6)!.prefix) : undefined;
  const add = (subnet: string | undefined, nodeIp: string | undefined, on: ((ip: string) => boolean) | undefined, tunnel: number | undefined): void => {
    const c = subnet ? parseCIDR(subnet) : undefined;
    if (!c) return;
    const reachable = !!nodeIp && (!on || on(nodeIp));
    if (d.backend === "host-gw" || (d.directRouting && on && reachable)) {
      if (reachable) out.set(subnet!, { nexthop: nodeIp!, ifindex: d.underlay.ifindex, mode: "direct" });
      return;
    }
    if (tunnel && nodeIp) out.set(subnet!, { nexthop: formatIP(c.prefix.ip), ifindex: tunnel, mode: "tunnel" });
  };
  for (const l of leases) {
    if (l.node === self || l.problem) continue;
    add(l.subnet, l.publicIp, on4, d.tunnel);
    if (l.ipv6Subnet) add(l.ipv6Subnet, l.publicIpv6, on6, d.tunnel6);
  }
  return out;
}

export interface MapPlan<V> {
  put: [string, V][];
  del: string[];
}

/** What to write and delete so a map holding `have` holds `want` (values compared field by field). */
export function planMap<V extends object>(have: ReadonlyMap<string, V>, want: ReadonlyMap<string, V>): MapPlan<V> {
  const same = (a: V, b: V) => JSON.stringify(a) === JSON.stringify(b);
  const put: [string, V][] = [];
  for (const [k, v] of want) {
    const h = have.get(k);
    if (!h || !same(h, v)) put.push([k, v]);
  }
  return { put, del: [...have.keys()].filter((k) => !want.has(k)) };
}
