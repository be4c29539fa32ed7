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

/** The two programs pod packets meet: at a pod veth's ingress, and at the underlay's or tunnel's. */
export type DatapathHook = "from-pod" | "from-net";

/** What bpf/datapath.c does with one packet, as the maps say it will. */
export interface Decision {
  hook: DatapathHook;
  /** redirect-peer: straight into a pod's namespace; redirect-neigh: out of a device to a next hop; classic: on through the bridge and the node's routing. */
  action: "redirect-peer" | "redirect-neigh" | "classic";
  /** The program's counter this packet lands in (gauze_datapath_packets{decision}). */
  stat: "local" | "direct" | "tunnel" | "inbound" | "pass" | "classic" | "spoof";
  /** The device redirected to (the pod's host veth for a peer redirect). */
  ifindex?: number;
  nexthop?: string;
  why: string;
}

/**
 * The programs' decision, in TypeScript, for trace and doctor to name a redirect as a hop: the
 * same lookups in the same order as bpf/datapath.c's from_pod and from_net (TTL and the DNAT
 * flows are per packet and left out: a probe has a fresh TTL and no Service in its way).
 * `ifindex`: the link the packet came in on, when known (from_pod refuses another pod's source).
 */
export function decide(hook: DatapathHook, src: string, dst: string, endpoints: ReadonlyMap<string, Endpoint>, remotes: ReadonlyMap<string, Remote>, ifindex?: number): Decision {
  const remoteOf = (ip: string): Remote | undefined => {
    let best: { bits: number; r: Remote } | undefined;
    for (const [prefix, r] of remotes) {
      const c = parseCIDR(prefix);
      if (c && prefixMatcher(c.prefix)(ip) && (!best || c.prefix.bits > best.bits)) best = { bits: c.prefix.bits, r };
    }
    return best?.r;
  };
  const classic = (stat: Decision["stat"], why: string): Decision => ({ hook, action: "classic", stat, why });
  const ep = endpoints.get(dst);
  if (hook === "from-net") {
    if (!ep) return classic("pass", `${dst} is no pod of this node: the node's own traffic`);
    if (ep.flags & EP_CLASSIC) return classic("classic", `a NetworkPolicy isolates ${dst}: its rules are in nftables`);
    if (!remoteOf(src)) return classic("pass", `${src} is no other node's pod: the reply must meet conntrack and masquerade`);
    return { hook, action: "redirect-peer", stat: "inbound", ifindex: ep.ifindex, why: "bpf_redirect_peer into the pod's namespace, past the bridge and netfilter" };
  }
  const self = endpoints.get(src);
  if (!self) return classic("pass", `${src} is no pod of this node`);
  if (ifindex !== undefined && self.ifindex !== ifindex) return classic("spoof", `${src} is another pod's address`);
  if (self.flags & EP_CLASSIC) return classic("classic", `a NetworkPolicy isolates ${src}: its rules are in nftables`);
  if (ep) {
    if (ep.flags & EP_CLASSIC) return classic("classic", `a NetworkPolicy isolates ${dst}: its rules are in nftables`);
    if (ep.ifindex === self.ifindex) return classic("pass", "to itself: the bridge hairpins it");
    return { hook, action: "redirect-peer", stat: "local", ifindex: ep.ifindex, why: "bpf_redirect_peer into the other pod's namespace, past the bridge and netfilter" };
  }
  const r = remoteOf(dst);
  if (!r) return classic("pass", `${dst} is in no other node's pod subnet: the node, a Service or the world`);
  return {
    hook, action: "redirect-neigh", stat: r.mode, ifindex: r.ifindex, nexthop: r.nexthop,
    why: `bpf_redirect_neigh to ${r.nexthop}${r.mode === "tunnel" ? " into the tunnel device (the kernel encapsulates)" : " out of the underlay"}, past the bridge and netfilter`,
  };
}
