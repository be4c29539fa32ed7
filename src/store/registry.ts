// The subnet registry: where nodes lease their pod subnets. One interface, several stores
// (the lab's embedded file store here; etcd and the Kubernetes API later); the agent and the
// backends only ever see Lease and NetworkConfig.
import { type Prefix, formatPrefix, parseCIDR, prefixContains, addToIP, familyBits, prefixesOverlap } from "../net/cidr.ts";

/** flannel's net-conf.json fields, same names. */
export interface NetworkConfig {
  Network: string;
  /** flannel's dual-stack switches: IPv4 on and IPv6 off are what gauze runs today. */
  EnableIPv4?: boolean;
  EnableIPv6?: boolean;
  IPv6Network?: string;
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
  /** What the backend publishes for its peers: VXLAN's VTEP MAC, WireGuard's public key. */
  backendData: { vtepMac?: string; publicKey?: string };
  /** Milliseconds since the epoch. */
  expiresAt: number;
  /** Where the registry keeps it (an etcd key, a file, a Node): named when the lease is refused. */
  key?: string;
  /** Set when the stored record could not be read as a lease at all (not JSON, fields missing). */
  problem?: string;
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
}

/** Validates a network config's addressing and fills flannel's defaults (SubnetLen 24 for IPv4, backend vxlan). */
export function resolveNetwork(c: NetworkConfig): ResolvedNetwork {
  if (c.EnableIPv6 === true) throw new RegistryError("network config: EnableIPv6 is true, and gauze does not run an IPv6 pod network yet", "set EnableIPv6 to false (or leave it out); pods still get IPv6 from a CNI config's own ranges");
  if (c.EnableIPv4 === false) throw new RegistryError("network config: EnableIPv4 is false, and an IPv4 pod network is what gauze runs", "leave EnableIPv4 out or set it to true");
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
export function leaseRecord(key: string, subnet: string, fields: { node: unknown; publicIp: unknown; backendType: unknown; vtepMac: unknown; publicKey?: unknown; expiresAt: unknown } | string): Lease {
  const bad = (problem: string): Lease => ({ subnet, node: "?", publicIp: "", backendType: "", backendData: {}, expiresAt: Number.MAX_SAFE_INTEGER, key, problem });
  if (typeof fields === "string") return bad(fields);
  const { node, publicIp, backendType, vtepMac, publicKey, expiresAt } = fields;
  if (typeof node !== "string" || node === "") return bad("no node name");
  if (typeof publicIp !== "string") return bad("no public IP");
  if (backendType !== undefined && typeof backendType !== "string") return bad("backend type is not a string");
  if (vtepMac !== undefined && typeof vtepMac !== "string") return bad("VTEP MAC is not a string");
  if (publicKey !== undefined && typeof publicKey !== "string") return bad("public key is not a string");
  if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) return bad("no expiry time");
  return { subnet, node, publicIp, backendType: (backendType as string | undefined) ?? "vxlan", backendData: { ...(vtepMac ? { vtepMac: vtepMac as string } : {}), ...(publicKey ? { publicKey: publicKey as string } : {}) }, expiresAt, key };
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
