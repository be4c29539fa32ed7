// Leases are input, not truth: whatever is in etcd, the Kubernetes API or the registry directory
// is checked before anything is programmed from it. A lease that fails is skipped (and named,
// with why, for the log, the metric and doctor); it never stops the valid peers.
import { type Prefix, formatPrefix, parseCIDR, parseIP, prefixesOverlap } from "../net/cidr.ts";
import type { Lease } from "./registry.ts";

export interface InvalidLease {
  /** Where it came from (an etcd key, a file, a Node), or its subnet. */
  key: string;
  node: string;
  subnet: string;
  why: string;
}

export interface LeaseRules {
  /** The pod network and the length every lease has. */
  network: Prefix;
  subnetLen: number;
  /** This node: its name and its own subnet (once leased). */
  self: string;
  selfSubnet?: string;
  /** The underlay's address family: peers' public IPs must be of it. */
  underlayFamily: 4 | 6;
  /** Backend types this agent knows. */
  backendTypes: readonly string[];
}

/** Why a node IP cannot be a peer's underlay address, or undefined when it can. */
export function badPublicIp(text: string, family: 4 | 6): string | undefined {
  const ip = typeof text === "string" ? parseIP(text) : undefined;
  if (!ip) return `public IP ${JSON.stringify(text)} is not an IP address`;
  if (ip.family !== family) return `public IP ${text} is IPv${ip.family}, the underlay is IPv${family}`;
  if (ip.family === 4) {
    const first = Number(ip.value >> 24n);
    if (ip.value === 0n || first === 0) return `public IP ${text} is not a host address`;
    if (first === 127) return `public IP ${text} is a loopback address`;
    if (first >= 224) return `public IP ${text} is ${first < 240 ? "multicast" : "reserved or broadcast"}`;
  } else {
    if (ip.value === 0n || ip.value === 1n) return `public IP ${text} is not a host address`;
    if (ip.value >> 120n === 0xffn) return `public IP ${text} is multicast`;
  }
  return undefined;
}

/**
 * The leases peers may be programmed from, and the rest with why: each must have a subnet that
 * parses, sits inside the pod network with the configured length, is not this node's, and
 * overlaps no other lease (overlapping ones are all refused: routing to either would break
 * the other); a public IP that is a unicast address of the underlay's family; a known backend.
 * Backend data (a VTEP MAC) is the backend's to judge.
 */
export function validateLeases(leases: readonly Lease[], r: LeaseRules): { valid: Lease[]; invalid: InvalidLease[] } {
  const invalid: InvalidLease[] = [];
  const candidates: { lease: Lease; prefix: Prefix }[] = [];
  const refuse = (l: Lease, why: string) => invalid.push({ key: l.key ?? l.subnet, node: typeof l.node === "string" ? l.node : "?", subnet: String(l.subnet), why });
  for (const l of leases) {
    if (l.node === r.self) continue; // our own record: not a peer
    if (l.problem) { refuse(l, l.problem); continue; }
    const c = typeof l.subnet === "string" ? parseCIDR(l.subnet) : undefined;
    if (!c) { refuse(l, `subnet ${JSON.stringify(l.subnet)} is not a CIDR`); continue; }
    if (c.prefix.ip.family !== r.network.ip.family || c.prefix.bits < r.network.bits || !prefixesOverlap(c.prefix, r.network)) {
      refuse(l, `subnet ${l.subnet} is outside the pod network ${formatPrefix(r.network)}`); continue;
    }
    if (c.prefix.bits !== r.subnetLen) { refuse(l, `subnet ${l.subnet} is a /${c.prefix.bits}, the network's leases are /${r.subnetLen}`); continue; }
    if (c.host.value !== c.prefix.ip.value) { refuse(l, `subnet ${l.subnet} has host bits set (${formatPrefix(c.prefix)} meant?)`); continue; }
    if (r.selfSubnet && formatPrefix(c.prefix) === r.selfSubnet) { refuse(l, `subnet ${l.subnet} is this node's own (${r.self})`); continue; }
    if (typeof l.node !== "string" || l.node === "") { refuse(l, "no node name"); continue; }
    const ipProblem = badPublicIp(l.publicIp, r.underlayFamily);
    if (ipProblem) { refuse(l, ipProblem); continue; }
    if (!r.backendTypes.includes(l.backendType)) { refuse(l, `backend ${JSON.stringify(l.backendType)} is not one this agent knows (${r.backendTypes.join(", ")})`); continue; }
    candidates.push({ lease: l, prefix: c.prefix });
  }
  // Same length inside one network: two leases overlap only when they are the same subnet.
  const bySubnet = new Map<string, Lease[]>();
  for (const { lease, prefix } of candidates) {
    const k = formatPrefix(prefix);
    (bySubnet.get(k) ?? bySubnet.set(k, []).get(k)!).push(lease);
  }
  const valid: Lease[] = [];
  for (const [subnet, ls] of bySubnet) {
    if (ls.length === 1) { valid.push(ls[0]!); continue; }
    for (const l of ls) refuse(l, `subnet ${subnet} is claimed by ${ls.length} nodes (${ls.map((x) => x.node).join(", ")})`);
  }
  return { valid, invalid };
}
