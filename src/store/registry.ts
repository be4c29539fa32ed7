// The subnet registry: where nodes lease their pod subnets. One interface, several stores
// (the lab's embedded file store here; etcd and the Kubernetes API later); the agent and the
// backends only ever see Lease and NetworkConfig.
import { type Prefix, formatPrefix, parseCIDR, prefixContains, addToIP, familyBits, prefixesOverlap } from "../net/cidr.ts";

/** flannel's net-conf.json fields, same names. */
export interface NetworkConfig {
  Network: string;
  /** flannel's dual-stack switches: IPv4 is always on; EnableIPv6 adds an IPv6 pod network next to it. */
  EnableIPv4?: boolean;
  EnableIPv6?: boolean;
  IPv6Network?: string;
  /** Length of each node's IPv6 subnet (default 64). */
  IPv6SubnetLen?: number;
  SubnetLen?: number;
  SubnetMin?: string;
  SubnetMax?: string;
  /** Type and the backend's own options (VNI, Port, ...): each backend validates its fields. */
  Backend?: { Type?: string; [option: string]: unknown };
  /** How pod packets move: "classic" (the bridge and the node's routing, the default) or "ebpf" (redirected by bpf/datapath.c). */
  Datapath?: string;
}

export interface Lease {
  /** e.g. 10.244.1.0/24 */
  subnet: string;
  node: string;
  /** The node's underlay address: VXLAN's remote, host-gw's next hop. */
  publicIp: string;
  backendType: string;
  /** What the backend publishes for its peers: VXLAN's VTEP MAC, WireGuard's public key. */
  backendData: { vtepMac?: string; publicKey?: string; v6VtepMac?: string };
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Where the registry keeps it (an etcd key, a file, a Node): named when the lease is refused. */
  key?: string;
  /** Set when the stored record could not be read as a lease at all (not JSON, fields missing). */
  problem?: string;
  /** Dual-stack: the node's IPv6 pod subnet and its IPv6 underlay address (the IPv6 tunnel's remote). */
  ipv6Subnet?: string;
  publicIpv6?: string;
}

export interface LeaseRequest {
  node: string;
  publicIp: string;
  /** Dual-stack: the node's IPv6 underlay address. */
  publicIpv6?: string;
  backendType: string;
  backendData: Lease["backendData"];
}

export interface SubnetRegistry {
  readonly kind: string;
  getNetworkConfig(): Promise<NetworkConfig>;
  /**
   * This node's live lease if it has one (same subnet after a restart); else `prefer` (the
   * subnet it held before: its lease expired while it was away, or its record was garbled) when
   * no other node's live lease holds it; else a free subnet. Stores whose subnets are assigned
   * elsewhere (Kubernetes) ignore `prefer`.
   */
  acquireLease(req: LeaseRequest, ttlMs: number, prefer?: string): Promise<Lease>;
  /** Extends the lease only while it is still this node's; LeaseLostError otherwise. */
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

/** The lease is no longer this node's (it expired and another node took the subnet, or it was removed). */
export class LeaseLostError extends RegistryError {
  constructor(subnet: string, why: string) {
    super(`lease ${subnet} is no longer this node's: ${why}`, "the agent leases a subnet again");
    this.name = "LeaseLostError";
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
  /**
   * Dual-stack (EnableIPv6): the IPv6 pod network and each node's IPv6 subnet length. A node's
   * IPv6 subnet is the one with the same index as its IPv4 subnet (10.244.3.0/24 -> the fourth
   * /64): one lease, one race, and a person can tell the two apart at a glance.
   */
  ipv6?: { network: Prefix; subnetLen: number };
  /** "classic" unless the config says "Datapath": "ebpf". */
  datapath: "classic" | "ebpf";
}

/** The backends by the names users give them (`lab up --backend`, `gauze manifests --backend`): vxlan-direct is vxlan with DirectRouting. */
export type BackendChoice = "vxlan" | "host-gw" | "vxlan-direct" | "macvlan" | "wireguard";
export const BACKEND_CHOICES: readonly BackendChoice[] = ["vxlan", "host-gw", "vxlan-direct", "macvlan", "wireguard"];

/** net-conf.json's Backend block for one of those names. */
export function backendBlock(b: string): { Type: string; DirectRouting?: boolean } {
  return b === "vxlan-direct" ? { Type: "vxlan", DirectRouting: true } : { Type: b };
}

/** Validates a network config's addressing and fills flannel's defaults (SubnetLen 24 for IPv4, backend vxlan). */
export function resolveNetwork(c: NetworkConfig): ResolvedNetwork {
  if (c.EnableIPv4 === false) throw new RegistryError("network config: EnableIPv4 is false, and gauze runs an IPv4 pod network always (IPv6 comes next to it)", "leave EnableIPv4 out or set it to true");
  const net = parseCIDR(c.Network ?? "");
  if (!net) throw new RegistryError(`network config: Network ${JSON.stringify(c.Network)} is not a CIDR`, "set Network, e.g. 10.244.0.0/16");
  const network = net.prefix;
  if (network.ip.family !== 4) throw new RegistryError(`network config: Network ${c.Network} is IPv6`, "set Network to the IPv4 pod network, and EnableIPv6 with IPv6Network for the IPv6 one");
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
  const datapath = c.Datapath ?? "classic";
  if (datapath !== "classic" && datapath !== "ebpf") throw new RegistryError(`network config: Datapath ${JSON.stringify(c.Datapath)} is not a datapath`, "write \"Datapath\": \"classic\" (the bridge and the node's routing, the default) or \"ebpf\" (pod packets redirected by eBPF)");
  const out: ResolvedNetwork = { network, subnetLen, min, max, backendType: type.toLowerCase(), backendConfig: backend, datapath };
  if (c.EnableIPv6 === true) out.ipv6 = resolveIpv6(c, out);
  else if (c.EnableIPv6 !== undefined && c.EnableIPv6 !== false) throw new RegistryError(`network config: EnableIPv6 ${JSON.stringify(c.EnableIPv6)} is not true or false`, "write \"EnableIPv6\": true and an IPv6Network for a dual-stack pod network");
  return out;
}

/** The IPv6 half of a dual-stack network: a prefix with room for one subnet per IPv4 subnet. */
function resolveIpv6(c: NetworkConfig, v4: ResolvedNetwork): NonNullable<ResolvedNetwork["ipv6"]> {
  const net = parseCIDR(c.IPv6Network ?? "");
  if (!net || net.prefix.ip.family !== 6) throw new RegistryError(`network config: EnableIPv6 is true and IPv6Network ${JSON.stringify(c.IPv6Network)} is not an IPv6 CIDR`, "set IPv6Network, e.g. fd00:10:244::/56");
  const len = c.IPv6SubnetLen ?? 64;
  if (!Number.isInteger(len) || len <= net.prefix.bits || len > 126) throw new RegistryError(`network config: IPv6SubnetLen ${len} does not fit in ${formatPrefix(net.prefix)}`, `use a length between ${net.prefix.bits + 1} and 126 (64 is usual)`);
  const need = v4.subnetLen - v4.network.bits;
  if (len - net.prefix.bits < need) {
    throw new RegistryError(`network config: IPv6Network ${formatPrefix(net.prefix)} holds ${2 ** (len - net.prefix.bits)} /${len} subnets, fewer than the ${2 ** need} IPv4 subnets of ${formatPrefix(v4.network)}`, `use an IPv6Network of /${len - need} or shorter`);
  }
  return { network: net.prefix, subnetLen: len };
}

/** A node's IPv6 subnet: the one with the index its IPv4 subnet has in the IPv4 network. */
export function ipv6SubnetFor(n: ResolvedNetwork, subnet: string): string | undefined {
  const p = parseCIDR(subnet)?.prefix;
  if (!n.ipv6 || !p || p.ip.family !== 4 || !prefixesOverlap(p, n.network)) return undefined;
  const index = (p.ip.value - n.network.ip.value) >> BigInt(32 - n.subnetLen);
  const step = 1n << BigInt(128 - n.ipv6.subnetLen);
  return formatPrefix({ ip: addToIP(n.ipv6.network.ip, index * step), bits: n.ipv6.subnetLen });
}

/** The dual-stack fields a store writes into a new lease: the IPv6 subnet and underlay address. */
export function ipv6LeaseFields(n: ResolvedNetwork, subnet: string, req: LeaseRequest): Pick<Lease, "ipv6Subnet" | "publicIpv6"> {
  const ipv6Subnet = ipv6SubnetFor(n, subnet);
  return { ...(ipv6Subnet ? { ipv6Subnet } : {}), ...(req.publicIpv6 ? { publicIpv6: req.publicIpv6 } : {}) };
}

/**
 * A subnet in [min, max] that overlaps no live lease; undefined when the network is full. The
 * lowest one, or with `spread` one of the first `spread` free ones at random: after losing a race
 * for the lowest, nodes leasing at the same moment then rarely collide again.
 */
export function pickFreeSubnet(n: ResolvedNetwork, taken: string[], spread = 1): Prefix | undefined {
  // Only leases of the network's own length inside it hold a subnet: anything else (a /1 someone
  // wrote into etcd, a subnet outside the network) is refused by every agent, so it cannot make
  // the network look full. Looked up in a set: a thousand leases cost a thousand steps.
  const used = new Set<bigint>();
  for (const t of taken) {
    const p = parseCIDR(t)?.prefix;
    if (p && p.bits === n.subnetLen && p.ip.family === n.network.ip.family && prefixesOverlap(p, n.network)) used.add(p.ip.value);
  }
  const step = 1n << BigInt(familyBits(n.network.ip.family) - n.subnetLen);
  const free: Prefix[] = [];
  for (let v = n.min.ip.value; v <= n.max.ip.value && free.length < spread; v += step) {
    if (!used.has(v)) free.push({ ip: { family: n.network.ip.family, value: v }, bits: n.subnetLen });
  }
  return free[Math.floor(Math.random() * free.length)];
}

/**
 * A stored record as a lease, whatever it holds: a record that is not an object with the
 * fields of a lease comes back with `problem` set (the agent refuses it and says so) rather than
 * being dropped in silence or stopping the listing.
 */
export function leaseRecord(key: string, subnet: string, fields: { node: unknown; publicIp: unknown; backendType: unknown; vtepMac: unknown; publicKey?: unknown; expiresAt: unknown; ipv6Subnet?: unknown; publicIpv6?: unknown; v6VtepMac?: unknown } | string): Lease {
  const bad = (problem: string): Lease => ({ subnet, node: "?", publicIp: "", backendType: "", backendData: {}, expiresAt: Number.MAX_SAFE_INTEGER, key, problem });
  if (typeof fields === "string") return bad(fields);
  const { node, publicIp, backendType, vtepMac, publicKey, expiresAt, ipv6Subnet, publicIpv6, v6VtepMac } = fields;
  if (typeof node !== "string" || node === "") return bad("no node name");
  if (typeof publicIp !== "string") return bad("no public IP");
  if (backendType !== undefined && typeof backendType !== "string") return bad("backend type is not a string");
  if (vtepMac !== undefined && typeof vtepMac !== "string") return bad("VTEP MAC is not a string");
  if (publicKey !== undefined && typeof publicKey !== "string") return bad("public key is not a string");
  if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) return bad("no expiry time");
  // The IPv6 half is judged where it is used (the IPv6 side skips a peer whose half is wrong, and
  // its IPv4 side still works): here only a field of the wrong type makes the record unreadable.
  for (const [name, v] of [["IPv6 subnet", ipv6Subnet], ["public IPv6", publicIpv6], ["IPv6 VTEP MAC", v6VtepMac]] as const) {
    if (v !== undefined && typeof v !== "string") return bad(`${name} is not a string`);
  }
  return {
    subnet, node, publicIp, backendType: (backendType as string | undefined) ?? "vxlan",
    backendData: { ...(vtepMac ? { vtepMac: vtepMac as string } : {}), ...(publicKey ? { publicKey: publicKey as string } : {}), ...(v6VtepMac ? { v6VtepMac: v6VtepMac as string } : {}) },
    expiresAt, key, ...(ipv6Subnet ? { ipv6Subnet: ipv6Subnet as string } : {}), ...(publicIpv6 ? { publicIpv6: publicIpv6 as string } : {}),
  };
}

/** JSON text as an object, or why it is not one. */
export function parseRecord(text: string): Record<string, unknown> | string {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : "value is not a JSON object";
  } catch {
    return "value is not JSON";
  }
}

/**
 * Whether a node may take `prefer` back: it is a subnet of the network's length inside
 * [min, max], and the only record there (if any) is not another node's lease (absent, expired,
 * or unreadable: nobody can be routed to from it). `now` judges expiry by the record's own time;
 * stores whose TTL lives elsewhere (etcd deletes the key) pass undefined, so that a clock skew
 * between nodes can never make a live lease look free.
 */
export function mayRetake(n: ResolvedNetwork, prefer: string | undefined, holder: Lease | undefined, now?: number): prefer is string {
  const p = prefer ? parseCIDR(prefer) : undefined;
  if (!p || p.prefix.bits !== n.subnetLen || p.host.value !== p.prefix.ip.value || p.prefix.ip.family !== n.network.ip.family) return false;
  if (p.prefix.ip.value < n.min.ip.value || p.prefix.ip.value > n.max.ip.value) return false;
  return !holder || !!holder.problem || (now !== undefined && holder.expiresAt <= now);
}

export function leaseKey(subnet: string): string {
  return subnet.replace("/", "-");
}
