// The subnet registry: where nodes lease their pod subnets. One interface, several stores
// (the lab's embedded file store here; etcd and the Kubernetes API later); the agent and the
// backends only ever see Lease and NetworkConfig.
import { type Prefix, formatPrefix, parseCIDR, prefixContains, addToIP, familyBits, prefixesOverlap } from "../net/cidr.ts";

/** flannel's net-conf.json fields, same names. */
export interface NetworkConfig {
  Network: string;
  SubnetLen?: number;
  SubnetMin?: string;
  SubnetMax?: string;
  /** Type and the backend's own options (VNI, Port, ...): each backend validates its fields. */
  Backend?: { Type?: string; [option: string]: unknown };
}

export interface Lease {
  /** e.g. 10.244.1.0/24 */
  subnet: string;
  node: string;
  /** The node's underlay address: VXLAN's remote, host-gw's next hop. */
  publicIp: string;
  backendType: string;
  backendData: { vtepMac?: string };
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface LeaseRequest {
  node: string;
  publicIp: string;
  backendType: string;
  backendData: Lease["backendData"];
}

export interface SubnetRegistry {
  readonly kind: string;
  getNetworkConfig(): Promise<NetworkConfig>;
  /** This node's live lease if it has one (same subnet after a restart), else a free subnet. */
  acquireLease(req: LeaseRequest, ttlMs: number): Promise<Lease>;
  renewLease(lease: Lease, ttlMs: number): Promise<Lease>;
  /** Live leases (expired ones are left out). */
  listLeases(): Promise<Lease[]>;
  releaseLease(subnet: string): Promise<void>;
  /** Calls `onChange` whenever leases may have changed; the caller re-lists (level-triggered). */
  watch(onChange: () => void): () => void;
  close(): void;
}

export class RegistryError extends Error {
  constructor(message: string, readonly fix: string) {
    super(`${message} (${fix})`);
    this.name = "RegistryError";
  }
}

export interface ResolvedNetwork {
  network: Prefix;
  subnetLen: number;
  min: Prefix;
  max: Prefix;
  backendType: string;
  /** The Backend block as given; the backend named by backendType parses it. */
  backendConfig: Record<string, unknown>;
}

/** Validates a network config's addressing and fills flannel's defaults (SubnetLen 24 for IPv4, backend vxlan). */
export function resolveNetwork(c: NetworkConfig): ResolvedNetwork {
  const net = parseCIDR(c.Network ?? "");
  if (!net) throw new RegistryError(`network config: Network ${JSON.stringify(c.Network)} is not a CIDR`, "set Network, e.g. 10.244.0.0/16");
  const network = net.prefix;
  const bits = familyBits(network.ip.family);
  const subnetLen = c.SubnetLen ?? (network.ip.family === 4 ? 24 : 64);
  if (!Number.isInteger(subnetLen) || subnetLen <= network.bits || subnetLen > bits - 2) {
    throw new RegistryError(`network config: SubnetLen ${subnetLen} does not fit in ${formatPrefix(network)}`, `use a length between ${network.bits + 1} and ${bits - 2}`);
  }
  const step = 1n << BigInt(bits - subnetLen);
  const count = 1n << BigInt(subnetLen - network.bits);
  const nth = (i: bigint): Prefix => ({ ip: addToIP(network.ip, i * step), bits: subnetLen });
  const parseBound = (v: string | undefined, field: string, dflt: Prefix): Prefix => {
    if (v === undefined) return dflt;
    const p = parseCIDR(v.includes("/") ? v : `${v}/${subnetLen}`);
    if (!p || !prefixContains(network, p.host)) throw new RegistryError(`network config: ${field} ${v} is not inside ${formatPrefix(network)}`, `pick a ${field} inside Network`);
    return { ip: p.prefix.ip, bits: subnetLen };
  };
  const min = parseBound(c.SubnetMin, "SubnetMin", nth(0n));
  const max = parseBound(c.SubnetMax, "SubnetMax", nth(count - 1n));
  if (min.ip.value > max.ip.value) throw new RegistryError("network config: SubnetMin is above SubnetMax", "swap them");
  const backend = c.Backend ?? {};
  if (typeof backend !== "object" || backend === null || Array.isArray(backend)) throw new RegistryError("network config: Backend is not an object", "write e.g. \"Backend\": {\"Type\": \"vxlan\"}");
  const type = backend.Type ?? "vxlan";
  if (typeof type !== "string" || type === "") throw new RegistryError(`network config: Backend.Type ${JSON.stringify(type)} is not a backend name`, "use vxlan or host-gw");
  return { network, subnetLen, min, max, backendType: type.toLowerCase(), backendConfig: backend };
}

/**
 * A subnet in [min, max] that overlaps no live lease; undefined when the network is full. The
 * lowest one, or with `spread` one of the first `spread` free ones at random: after losing a race
 * for the lowest, nodes leasing at the same moment then rarely collide again.
 */
export function pickFreeSubnet(n: ResolvedNetwork, taken: string[], spread = 1): Prefix | undefined {
  const used = taken.map((t) => parseCIDR(t)?.prefix).filter((p): p is Prefix => !!p);
  // Leases of the network's own length (all of them, normally) are looked up in a set; only
  // odd ones are checked for overlap: a thousand leases cost a thousand steps, not a million.
  const sameLen = new Set<bigint>();
  const odd: Prefix[] = [];
  for (const u of used) {
    if (u.bits === n.subnetLen && u.ip.family === n.network.ip.family) sameLen.add(u.ip.value);
    else odd.push(u);
  }
  const step = 1n << BigInt(familyBits(n.network.ip.family) - n.subnetLen);
  const free: Prefix[] = [];
  for (let v = n.min.ip.value; v <= n.max.ip.value && free.length < spread; v += step) {
    if (sameLen.has(v)) continue;
    const cand: Prefix = { ip: { family: n.network.ip.family, value: v }, bits: n.subnetLen };
    if (!odd.some((u) => prefixesOverlap(u, cand))) free.push(cand);
  }
  return free[Math.floor(Math.random() * free.length)];
}

export function leaseKey(subnet: string): string {
  return subnet.replace("/", "-");
}
