// The node's underlay link as the agent finds it: the interface the backends run over (given, or
// the one the IPv4 default route leaves through, as flannel picks it), its first IPv4 address,
// and for dual-stack its first global IPv6 address. Doctor and uninstall find it the same way.
import type { Rtnl } from "../kernel/netlink/index.ts";
import type { NodeLink } from "../backend/backend.ts";

/** The node's underlay link and its first IPv4 address. */
export function readNodeLink(nl: Rtnl, wanted?: string): NodeLink {
  let iface = wanted;
  if (!iface) {
    const dflt = nl.routes(4).find((r) => r.dst === "0.0.0.0/0" && r.table === 254 && r.oif);
    const via = dflt?.oif ? nl.linkByIndex(dflt.oif) : undefined;
    if (!via) throw new Error("no IPv4 default route to find the node's underlay interface: give it with --iface");
    iface = via.name;
  }
  const l = nl.link(iface);
  if (!l) throw new Error(`interface ${iface} does not exist: give the node's underlay interface with --iface`);
  const v4 = nl.addrs(l, 4).find((a) => a.scope === 0);
  if (!v4) throw new Error(`interface ${iface} has no IPv4 address: give the node's underlay interface with --iface`);
  return { iface, index: l.index, ip: v4.address, prefixLen: v4.prefixLen, mtu: l.mtu };
}

/** Dual-stack: the underlay link's first global IPv6 address (the IPv6 tunnel's endpoint). */
export function readNodeLink6(nl: Rtnl, v4: NodeLink): NodeLink {
  const v6 = nl.addrs({ index: v4.index, name: v4.iface }, 6).find((a) => a.scope === 0 && !a.address.startsWith("fe80:"));
  if (!v6) throw new Error(`EnableIPv6 is true and ${v4.iface} has no global IPv6 address for the IPv6 tunnel: give the node one (the IPv6 pods' traffic travels between these), or set EnableIPv6 to false`);
  return { ...v4, ip: v6.address, prefixLen: v6.prefixLen };
}
