// The veth pair of one attachment. The host end's name is derived from (container ID, ifname)
// so DEL and GC find it without any saved state, even when CNI_NETNS is already gone. The pair
// is made in one request from the node's side, its peer created straight inside the pod's
// namespace; the pod's side is then addressed through a socket opened in that namespace.
import { sha256Hex } from "../util/builtin.ts";
import { openNetns } from "../kernel/netns.ts";
import { closeFd } from "../kernel/files.ts";
import { type Link, NetlinkError, type Rtnl, addAddr, addRoute, addVeth, delLink, markLink, setLink } from "../kernel/netlink/index.ts";
import { DataplaneError } from "./errors.ts";

export const HOST_VETH_PREFIX = "gz";

export function hostVethName(containerId: string, ifname: string): string {
  const h = sha256Hex(`${containerId}\u0000${ifname}`);
  return HOST_VETH_PREFIX + h.slice(0, 12);
}

/** The host end's alias: which network and attachment it belongs to (GC removes only its own network's). */
export function vethAlias(network: string, containerId: string, ifname: string): string {
  return `gauze:${network}:${containerId}/${ifname}`.slice(0, 255);
}

export function vethNetwork(alias: string | undefined): string | undefined {
  const m = alias ? /^gauze:([^:]+):/.exec(alias) : null;
  return m ? m[1] : undefined;
}

/**
 * A random locally administered unicast MAC, as the kernel gives a veth end: knowing it up front
 * saves reading the link back for the CNI result.
 */
export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0]! & 0xfe) | 0x02;
  let s = "";
  for (let i = 0; i < 6; i++) s += (i ? ":" : "") + (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

export interface VethWant {
  /** The alias written on the host end (vethAlias). */
  alias: string;
  /** The host end's MAC (randomMac). */
  hostMac: string;
  hostName: string;
  ifname: string;
  netnsPath: string;
  mtu: number;
  bridge: Link;
  hairpin: boolean;
}

/** What createVeth found when the kernel said a name was taken. */
export type VethClash = "stale-host-end" | undefined;

/**
 * Creates the pair, enslaved to the bridge and up, with hairpin when asked. Returns
 * "stale-host-end" (and makes nothing) when a host end of this name exists already: a killed
 * ADD left it. Throws DataplaneError "ifname-taken" when the name is taken inside the pod.
 */
export function createVeth(nl: Rtnl, w: VethWant): VethClash {
  let fd: number;
  try {
    fd = openNetns(w.netnsPath);
  } catch (e) {
    throw new DataplaneError("bad-netns", `CNI_NETNS ${w.netnsPath} cannot be opened: ${(e as Error).message}`, "pass the path of the container's network namespace", { cause: e });
  }
  try {
    // One datagram: the pair, then its alias and hairpin by name (the kernel runs them in order).
    const reqs = [
      addVeth({ name: w.hostName, mtu: w.mtu, mac: w.hostMac, master: w.bridge, up: true }, { name: w.ifname, mtu: w.mtu, netnsFd: fd, netnsLabel: w.netnsPath }),
      markLink(w.hostName, { alias: w.alias, ...(w.hairpin ? { hairpin: true } : {}) }),
    ];
    const [made, marked] = nl.apply(reqs);
    if (made) {
      if (made.exists) {
        if (nl.link(w.hostName)) return "stale-host-end";
        throw new DataplaneError("ifname-taken", `interface ${w.ifname} already exists in ${w.netnsPath}`, "pick another CNI_IFNAME, or DEL the attachment that owns it first");
      }
      if (made.errno === 22 /* EINVAL: the descriptor is not a network namespace */) {
        throw new DataplaneError("bad-netns", `CNI_NETNS ${w.netnsPath} is not a network namespace`, "pass the path of the container's network namespace");
      }
      throw made;
    }
    if (marked) {
      nl.apply([delLink(w.hostName)]);
      throw marked;
    }
    return undefined;
  } catch (e) {
    if (e instanceof NetlinkError) throw new DataplaneError("kernel", e.message, "the kernel refused a change on the node; see the message", { cause: e });
    throw e;
  } finally {
    closeFd(fd);
  }
}

/** Deletes a host end (the pod end goes with it); false when there was none. */
export function deleteVeth(nl: Rtnl, hostName: string): boolean {
  const [e] = nl.apply([delLink(hostName)]);
  if (!e) return true;
  if (e.notFound) return false;
  throw new DataplaneError("kernel", e.message, "the kernel refused to delete the pod's veth", { cause: e });
}

export interface PodAddress {
  /** "10.244.1.2/24" */
  address: string;
  gateway?: string;
}

export interface PodRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  priority?: number;
}

/** Inside the pod (a socket opened there): lo up, the addresses, the interface up, the routes. Returns the pod's link. */
export function configurePod(pod: Rtnl, ifname: string, ips: PodAddress[], routes: PodRoute[]): Link {
  try {
    const link = pod.link(ifname);
    if (!link) throw new DataplaneError("kernel", `interface ${ifname} is not in the pod's namespace after it was made`, "something in the pod's namespace removed it");
    const reqs = [setLink({ index: 1, name: "lo" }, { up: true })];
    for (const ip of ips) reqs.push(addAddr(link, ip.address));
    reqs.push(setLink(link, { up: true }));
    for (const r of routes) {
      const six = r.dst.includes(":");
      const gw = r.gw ?? ips.find((i) => i.address.includes(":") === six)?.gateway;
      reqs.push(addRoute({ dst: r.dst, dev: link, ...(gw ? { via: gw } : {}), ...(r.mtu ? { mtu: r.mtu } : {}), ...(r.priority ? { metric: r.priority } : {}) }));
    }
    pod.run(reqs);
    return link;
  } catch (e) {
    if (e instanceof NetlinkError) throw new DataplaneError("kernel", e.message, "the pod's namespace refused the change named in the message", { cause: e });
    throw e;
  }
}
