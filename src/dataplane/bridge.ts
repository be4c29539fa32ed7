// The node's pod bridge (cni0 by default): read its state once, then emit only the ip
// commands that are missing (idempotent: "exists and compatible" is success).
import { type IpCommand, IpError, type IpLink, ip } from "../kernel/ip.ts";
import { CniCode, CniError } from "../cni/errors.ts";
import { type IP, parseCIDR } from "../ipam/cidr.ts";

export function readLinkWithAddrs(name: string, netns?: string): IpLink | undefined {
  try {
    const links = ip(["-d", "addr", "show", "dev", name], netns ? { netns } : {}) as IpLink[];
    return links[0];
  } catch (e) {
    if (e instanceof IpError && e.isNotFound) return undefined;
    throw e;
  }
}

export function requireBridge(name: string, link: IpLink): void {
  const kind = link.linkinfo?.info_kind;
  if (kind !== "bridge") {
    throw new CniError(CniCode.InvalidConfig, `interface ${name} exists but is ${kind ? `a ${kind}` : "not a bridge"}`,
      `set "bridge" in the config to another name, or delete ${name}`);
  }
}

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

/**
 * Commands that bring the bridge from `current` to `want`. With `current` "unknown" (not read,
 * to save a spawn) every step is emitted and the caller runs them with `toleratedBridgeFailure`.
 */
export function bridgeCommands(current: IpLink | undefined | "unknown", want: BridgeWant): IpCommand[] {
  const cmds: IpCommand[] = [];
  const known = current === "unknown" ? undefined : current;
  if (current === "unknown" || !current) {
    const firstGw = want.gatewayCidrs.length ? parseCIDR(want.gatewayCidrs[0]!)?.host : undefined;
    const mac = bridgeMacFor(firstGw);
    cmds.push(["link", "add", "name", want.name, "mtu", String(want.mtu), ...(mac ? ["address", mac] : []), "type", "bridge"]);
  }
  const have = new Set((known?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  for (const cidr of want.gatewayCidrs) if (!have.has(cidr)) cmds.push(["addr", "add", cidr, "dev", want.name]);
  if (!known || !(known.flags ?? []).includes("UP")) cmds.push(["link", "set", "dev", want.name, "up"]);
  return cmds;
}

/** The bridge or its gateway address already being there is what we wanted. */
export function toleratedBridgeFailure(bridge: string) {
  return (cmd: IpCommand, message: string): boolean =>
    (cmd[0] === "link" && cmd[1] === "add" && cmd[3] === bridge && /File exists/.test(message)) ||
    (cmd[0] === "addr" && cmd[1] === "add" && cmd[4] === bridge && /File exists|already assigned/.test(message));
}
