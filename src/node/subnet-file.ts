// The subnet file the node agent writes and the plugin reads (flannel's subnet.env, renamed):
//   GAUZE_NETWORK=10.244.0.0/16   the whole pod network
//   GAUZE_SUBNET=10.244.1.1/24    this node's subnet, written as gateway/len
//   GAUZE_MTU=1450                MTU for pod interfaces
//   GAUZE_IPMASQ=true             the agent masquerades traffic leaving the pod network
//   GAUZE_UNDERLAY=172.18.0.0/16  macvlan backend: the node's L2 subnet, which pods join
//   GAUZE_UNDERLAY_GATEWAY=172.18.0.1  and its router, the pods' default gateway
//   GAUZE_IPV6_NETWORK=fd00:10:244::/48  dual-stack: the IPv6 pod network
//   GAUZE_IPV6_SUBNET=fd00:10:244:1::1/64  and this node's IPv6 subnet, as gateway/len
// FLANNEL_* keys are read too, so a node that already has flannel's file works unchanged.
import { FileError, readText } from "../kernel/files.ts";

export const DEFAULT_SUBNET_FILE = "/run/gauze/subnet.env";

export interface SubnetEnv {
  network: string;
  subnet: string;
  mtu?: number;
  ipMasq?: boolean;
  underlay?: string;
  underlayGateway?: string;
  ipv6Network?: string;
  ipv6Subnet?: string;
}

export class SubnetFileError extends Error {
  constructor(message: string, readonly missing: boolean) {
    super(message);
    this.name = "SubnetFileError";
  }
}

export function parseSubnetEnv(text: string, path: string): SubnetEnv {
  const vars = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).replace(/^(GAUZE|FLANNEL)_/, "");
    vars.set(key, line.slice(eq + 1).trim().replace(/^"(.*)"$/, "$1"));
  }
  const network = vars.get("NETWORK");
  const subnet = vars.get("SUBNET");
  if (!network || !subnet) throw new SubnetFileError(`${path} lacks ${!network ? "GAUZE_NETWORK" : "GAUZE_SUBNET"}`, false);
  const out: SubnetEnv = { network, subnet };
  const mtu = vars.get("MTU");
  if (mtu !== undefined) {
    const n = Number(mtu);
    if (!Number.isInteger(n) || n < 68 || n > 65535) throw new SubnetFileError(`${path}: GAUZE_MTU=${mtu} is not an MTU`, false);
    out.mtu = n;
  }
  const masq = vars.get("IPMASQ");
  if (masq !== undefined) out.ipMasq = masq === "true";
  const underlay = vars.get("UNDERLAY");
  if (underlay !== undefined) out.underlay = underlay;
  const gw = vars.get("UNDERLAY_GATEWAY");
  if (gw !== undefined) out.underlayGateway = gw;
  const net6 = vars.get("IPV6_NETWORK");
  const sub6 = vars.get("IPV6_SUBNET");
  if ((net6 === undefined) !== (sub6 === undefined)) throw new SubnetFileError(`${path} has ${net6 ? "GAUZE_IPV6_NETWORK without GAUZE_IPV6_SUBNET" : "GAUZE_IPV6_SUBNET without GAUZE_IPV6_NETWORK"}`, false);
  if (net6 !== undefined && sub6 !== undefined) {
    out.ipv6Network = net6;
    out.ipv6Subnet = sub6;
  }
  return out;
}

export function readSubnetFile(path: string): SubnetEnv {
  let text: string;
  try {
    text = readText(path);
  } catch (e) {
    const missing = e instanceof FileError && e.code === "ENOENT";
    throw new SubnetFileError(missing ? `subnet file ${path} does not exist` : `cannot read subnet file ${path}: ${(e as Error).message}`, missing);
  }
  return parseSubnetEnv(text, path);
}

export function formatSubnetEnv(env: SubnetEnv): string {
  const lines = [`GAUZE_NETWORK=${env.network}`, `GAUZE_SUBNET=${env.subnet}`];
  if (env.mtu !== undefined) lines.push(`GAUZE_MTU=${env.mtu}`);
  if (env.ipMasq !== undefined) lines.push(`GAUZE_IPMASQ=${env.ipMasq}`);
  if (env.underlay !== undefined) lines.push(`GAUZE_UNDERLAY=${env.underlay}`);
  if (env.underlayGateway !== undefined) lines.push(`GAUZE_UNDERLAY_GATEWAY=${env.underlayGateway}`);
  if (env.ipv6Network !== undefined) lines.push(`GAUZE_IPV6_NETWORK=${env.ipv6Network}`);
  if (env.ipv6Subnet !== undefined) lines.push(`GAUZE_IPV6_SUBNET=${env.ipv6Subnet}`);
  return lines.join("\n") + "\n";
}
