// The node's pod bridge (cni0 by default): made on first use with a stable MAC, its gateway
// addresses added, up. Idempotent: "exists and compatible" is success, and a link of that name
// that is not a bridge is refused before anything is added to it.
import { ensureSysctl } from "../kernel/sysctl.ts";
import { type IP, parseCIDR } from "../net/cidr.ts";
import { type Link, NetlinkError, type Rtnl, addAddr, addBridge, setLink } from "../kernel/netlink/index.ts";
import { DataplaneError } from "./errors.ts";

/**
 * A stable MAC for the bridge, derived from its gateway address (0a:58 + IPv4 bytes): a Linux
 * bridge otherwise takes the lowest MAC of its ports, so the gateway's MAC would change under
 * running pods whenever a pod with a lower MAC joins.
 */
export function bridgeMacFor(gateway: IP | undefined): string | undefined {
  if (!gateway || gateway.family !== 4) return undefined;
  const b = [24n, 16n, 8n, 0n].map((s) => Number((gateway.value >> s) & 0xffn).toString(16).padStart(2, "0"));
  return `0a:58:${b.join(":")}`;
}

export interface BridgeWant {
  name: string;
  mtu: number;
  /** Gateway addresses with prefix (10.244.1.1/24) to put on the bridge; empty when not a gateway. */
  gatewayCidrs: string[];
}

/** Refuses a link that is not a bridge (before any address goes on it). */
export function requireBridge(link: Link): void {
  if (link.kind !== "bridge") {
    throw new DataplaneError("not-a-bridge", `interface ${link.name} exists but is ${link.kind ? `a ${link.kind}` : "not a bridge"}`,
      `set "bridge" in the config to another name, or delete ${link.name}`);
  }
}

/** Reads the bridge; undefined when there is none yet. */
export function readBridge(nl: Rtnl, name: string): Link | undefined {
  const link = nl.link(name);
  if (link) requireBridge(link);
  return link;
}

const exists = (_r: unknown, e: NetlinkError) => e.exists;

/** Makes the bridge as wanted (creating it if `current` is undefined) and returns it. */
export function ensureBridge(nl: Rtnl, current: Link | undefined, want: BridgeWant): Link {
  let link = current;
  try {
    if (!link) {
      const firstGw = want.gatewayCidrs.length ? parseCIDR(want.gatewayCidrs[0]!)?.host : undefined;
      const mac = bridgeMacFor(firstGw);
      // A parallel ADD may create it first: EEXIST is fine, and the re-read checks what it is.
      nl.run([addBridge({ name: want.name, mtu: want.mtu, up: true, ...(mac ? { mac } : {}) })], exists);
      link = readBridge(nl, want.name);
      if (!link) throw new DataplaneError("kernel", `bridge ${want.name} vanished right after it was made`, "another process deletes it; find it");
      // IPv6: the bridge's link-local address is the source of the node's neighbour solicitations
      // to its pods, and while duplicate address detection runs (2 s from the first port) the
      // first pod's IPv6 traffic waits. Its MAC is made from this node's gateway address, unique
      // in the cluster, and the gateway address itself is added without DAD: nothing to detect.
      // Set before the first port joins, when DAD would start.
      if (want.gatewayCidrs.some((c) => c.includes(":"))) ensureSysctl(`net.ipv6.conf.${want.name}.accept_dad`, "0");
    }
    const reqs = want.gatewayCidrs.map((c) => addAddr(link!, c));
    if (!link.up) reqs.push(setLink(link, { up: true }));
    nl.run(reqs, exists);
    return link;
  } catch (e) {
    if (e instanceof NetlinkError) throw new DataplaneError("kernel", e.message, "the kernel refused a change on the node's bridge; see the message", { cause: e });
    throw e;
  }
}
