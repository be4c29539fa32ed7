// Where observe, trace and ui find the nodes: which nodes there are and how to reach each node's
// agent API, the pods (their node, addresses, and a way to send a probe from one), each node's
// interface names and doctor. They ask only this; where it comes from is the source's business.
// The lab is one source (lab/source.ts), this host's own agent another (host-source.ts); a
// cluster reached through the Kubernetes API is the next.
import type { PipedChild } from "../kernel/spawn.ts";

/** One node's agent API: a unix socket (the lab reaches every node's from this host). */
export interface AgentEndpoint {
  node: string;
  socket: string;
  /** What to do when this node's agent is not running: a command to paste. */
  startHint?: string;
}

export interface SourceNode {
  name: string;
  ip: string;
  ready: boolean;
  reason: string;
  subnet: string | null;
  vtepMac: string | null;
  agentUp: boolean;
  podMtu: number | null;
  overhead: number | null;
}

export interface SourcePod {
  /** The pod's name in its namespace. */
  name: string;
  namespace: string;
  node: string;
  ip?: string;
  ip6?: string;
  phase: string;
  reason?: string;
  /** The pod's labels, where the source knows them (observe --label selects by them). */
  labels?: Record<string, string>;
}

/** What the source knows of the cluster now. */
export interface ClusterView {
  name: string;
  backend: string;
  podCidr: string;
  podCidr6?: string;
  nodes: SourceNode[];
  pods: SourcePod[];
}

export interface DoctorFinding {
  node: string;
  id: string;
  status: string;
  evidence: string;
}

export interface ClusterSource {
  /** How the source is named in messages: "lab demo", "this host". */
  readonly label: string;
  /** The nodes' agent APIs (every node, or the one named: an unknown name is an error listing them). */
  agents(node?: string): AgentEndpoint[];
  view(): ClusterView;
  /** A pod by `[namespace/]name` ("default" when no namespace is given); unknown: an error listing the pods. */
  findPod(ref: string): SourcePod;
  /** Runs a command (a probe) from inside a pod's network namespace. */
  spawnInPod(pod: SourcePod, argv: string[]): PipedChild;
  /** Why no probe can be sent from a pod here (trace then follows the pod's own next packet); absent where it can. */
  readonly probeUnavailable?: string;
  /** A node's interfaces, index to name (empty when the node cannot be asked). */
  interfaceNames(node: string): Map<number, string>;
  /** Doctor's report on a node, as its JSON (a JSON {"error"} when it did not run, or not within `timeoutMs`). */
  doctorJson(node: string, timeoutMs?: number): Promise<string>;
  /** The command a user runs for that report. */
  doctorCommand(node: string): string;
  /** Where traffic to addresses outside the cluster goes, when it goes nowhere (the lab: no way out). */
  readonly outside?: string;
}

/** `namespace/name` of a pod. */
export function podRef(p: SourcePod): string {
  return `${p.namespace}/${p.name}`;
}

/** The failing and warning checks of a node's doctor report (or one finding saying doctor did not run). */
export async function doctorFindings(src: ClusterSource, node: string): Promise<DoctorFinding[]> {
  const text = await src.doctorJson(node);
  let rep: { checks?: { id: string; status: string; evidence: string[] }[]; error?: string } = {};
  try {
    rep = JSON.parse(text) as typeof rep;
  } catch {
    // not JSON: said below
  }
  if (!Array.isArray(rep.checks)) return [{ node, id: "doctor", status: "fail", evidence: `doctor did not run: ${String(rep.error ?? text).trim().slice(0, 200)}` }];
  return rep.checks.filter((c) => c.status === "fail" || c.status === "warn").map((c) => ({ node, id: c.id, status: c.status, evidence: c.evidence[0] ?? "" }));
}
