// The veth pair of one attachment. The host end's name is derived from (container ID, ifname)
// so DEL and GC find it without any saved state, even when CNI_NETNS is already gone.
import { sha256Hex } from "../util/builtin.ts";
import type { IpCommand } from "../kernel/ip.ts";
import type { CniIPConfig, CniRoute } from "../cni/result.ts";

export const HOST_VETH_PREFIX = "gz";

export function hostVethName(containerId: string, ifname: string): string {
  const h = sha256Hex(`${containerId}\u0000${ifname}`);
  return HOST_VETH_PREFIX + h.slice(0, 12);
}

export interface VethWant {
  hostName: string;
  ifname: string;
  netnsPath: string;
  mtu: number;
  bridge: string;
  hairpin: boolean;
}

/** Host-side commands: the pair with its peer created directly inside the pod's namespace. */
export function vethHostCommands(w: VethWant): IpCommand[] {
  const cmds: IpCommand[] = [
    ["link", "add", "name", w.hostName, "mtu", String(w.mtu), "type", "veth", "peer", "name", w.ifname, "mtu", String(w.mtu), "netns", w.netnsPath],
    ["link", "set", "dev", w.hostName, "master", w.bridge],
  ];
  if (w.hairpin) cmds.push(["link", "set", "dev", w.hostName, "type", "bridge_slave", "hairpin", "on"]);
  cmds.push(["link", "set", "dev", w.hostName, "up"]);
  return cmds;
}

/** Commands run inside the pod's namespace: lo up, addresses, interface up, routes. */
export function podCommands(ifname: string, ips: CniIPConfig[], routes: CniRoute[]): IpCommand[] {
  const cmds: IpCommand[] = [["link", "set", "dev", "lo", "up"]];
  for (const ip of ips) cmds.push(["addr", "add", ip.address, "dev", ifname]);
  cmds.push(["link", "set", "dev", ifname, "up"]);
  for (const r of routes) {
    // ip infers the family from dst, which is always a CIDR here (0.0.0.0/0, ::/0, ...).
    const six = r.dst.includes(":");
    const gw = r.gw ?? ips.find((i) => i.address.includes(":") === six)?.gateway;
    cmds.push(["route", "add", r.dst, ...(gw ? ["via", gw] : []), "dev", ifname,
      ...(r.mtu ? ["mtu", String(r.mtu)] : []), ...(r.priority ? ["metric", String(r.priority)] : [])]);
  }
  return cmds;
}
