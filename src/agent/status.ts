// The agent's report of itself: what it leased, programmed and repaired, which leases it refused,
// and which of its features are off and why. Written to <root>/run/gauze/agent.json after every
// pass, for `gauze lab status`, doctor and the ui; the same reasons go to /readyz and the log.
import { writeAtomic } from "../kernel/files.ts";
import type { InvalidLease } from "../store/validate.ts";
import type { PolicyStatus } from "./policy.ts";

/** A feature of the agent (drops, eBPF): on, or off with why and the one command that turns it on. */
export interface Feature {
  on: boolean;
  why?: string;
  fix?: string;
}

export interface AgentStatus {
  node: string;
  pid: number;
  ready: boolean;
  reason: string;
  nodeIp?: string;
  subnet?: string;
  network?: string;
  backend?: string;
  /** The backend's options in effect (VNI and Port for vxlan). */
  backendOptions?: Record<string, unknown>;
  /** The network config's Backend block as the agent read it (doctor rebuilds the backend from it). */
  backendConfig?: Record<string, unknown>;
  /** Bytes each packet gains on the wire with this backend. */
  overhead?: number;
  device?: string;
  vtepMac?: string;
  podMtu?: number;
  peers: number;
  leaseExpiresAt?: number;
  lastReconcile?: { at: number; ms: number; readMs: number; added: number; removed: number; failed: number; trigger: string };
  /** Drift repaired after kernel events: how many passes, and the last one. */
  repairs?: { count: number; last?: { at: number; event: string; ms: number } };
  /** Dual-stack: this node's IPv6 underlay address, IPv6 subnet, the IPv6 network, its device and VTEP MAC. */
  nodeIpv6?: string;
  ipv6Subnet?: string;
  ipv6Network?: string;
  device6?: string;
  v6VtepMac?: string;
  /** The other nodes as this agent last saw them in the registry (doctor compares the kernel with it). */
  peerLeases?: { node: string; subnet: string; publicIp: string; backendType: string; vtepMac?: string; publicKey?: string; ipv6Subnet?: string; publicIpv6?: string; v6VtepMac?: string }[];
  /** Leases refused (by the checks every lease passes, or by the backend), each with where it is and why. */
  invalidLeases?: InvalidLease[];
  healthAddr?: string;
  iface?: string;
  vni?: number;
  port?: number;
  ipMasq?: boolean;
  bridge?: string;
  /** What the agent does beyond the dataplane, and what is off with why and the one command that fixes it. */
  features?: Record<string, Feature>;
  /** NetworkPolicy on this node: what is programmed, from which generation, and the policies that failed closed. */
  policy?: PolicyStatus;
  /** The eBPF datapath, when the agent runs it (DatapathKeeper.report()). */
  datapath?: { on: boolean; why?: string; pinDir: string; endpoints?: number; remotes?: number; repairs: number; links?: string[]; mode?: "tcx" | "clsact"; netDevices?: string[] };
  updatedAt: number;
}

/** Writes the status file (informational: a failure to write it is not the agent's failure). */
export function writeStatusFile(path: string, st: AgentStatus): void {
  try {
    writeAtomic(path, JSON.stringify(st, null, 2) + "\n");
  } catch {
    // status is informational
  }
}

/** The features that are off, as one line for /readyz and the log ("drops: ...; fix: ..."). */
export function degradedLine(features: Record<string, Feature> | undefined): string | undefined {
  const off = Object.entries(features ?? {}).filter(([, f]) => !f.on);
  if (off.length === 0) return undefined;
  return off.map(([name, f]) => `${name} off: ${f.why ?? "unavailable"}${f.fix ? `; fix: ${f.fix}` : ""}`).join("; ");
}
