// Kernel events as the agent's log and status name the drift they repaired ("route 10.244.1.0/24
// via 10.244.1.0 deleted"), and gauze's own devices that the configured backend does not use.
import type { Logger } from "pino";
import { type Link, type Rtnl, delLink } from "../kernel/netlink/index.ts";
import type { KernelEvent } from "../kernel/netlink/monitor.ts";

export function describeEvent(e: KernelEvent): string {
  switch (e.kind) {
    case "link": return `link ${e.link.name} ${e.op === "del" ? "deleted" : e.link.up ? "changed" : "down"}`;
    case "route": return `route ${e.route.dst}${e.route.gateway ? ` via ${e.route.gateway}` : ""} ${e.op === "del" ? "deleted" : "changed"}`;
    case "neigh": return `neighbour ${e.neigh.dst} ${e.op === "del" ? "deleted" : "changed"}`;
    case "fdb": return `FDB ${e.fdb.mac}${e.fdb.dst ? ` dst ${e.fdb.dst}` : ""} ${e.op === "del" ? "deleted" : "changed"}`;
    case "addr": return `address ${e.addr.address} ${e.op === "del" ? "deleted" : "changed"}`;
  }
}

/**
 * gauze's devices that the configured backend does not use (gauze.1 after a switch to host-gw,
 * gauze.1 after the VNI changed to 42): removed, with their routes, so a switch leaves nothing behind.
 */
export function removeOtherDevices(nl: Rtnl, keep: string[], log: Logger): void {
  const ours = (l: Link) => (/^gauze6?\.\d+$/.test(l.name) && l.kind === "vxlan") || l.name === "gauze-wg";
  const stale = nl.links().filter((l) => ours(l) && !keep.includes(l.name));
  for (const l of stale) {
    nl.run([delLink(l)], (_r, e) => e.notFound);
    log.warn({ device: l.name }, "removed a gauze device the configured backend does not use");
  }
}
