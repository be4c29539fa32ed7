// A lab node as `lab status`, the demo and the ui show it: Ready or NotReady with kubelet's
// reason (the runtime's view of net.d), the agent's status (subnet, VTEP MAC, peers), and in
// manifest mode the DaemonSet pod and its readiness probe's answer.
import { agentStatus } from "./agents.ts";
import { agentRunning } from "./processes.ts";
import { loadNetwork, runtimeFor } from "./runtime.ts";
import { podReady, runningContainers } from "./kube/kubelet.ts";
import type { LabNode, LabState } from "./state.ts";

export interface NodeView {
  name: string;
  role: string;
  ready: boolean;
  reason?: string;
  ip: string;
  subnet?: string;
  vtepMac?: string;
  /** Dual-stack labs: the node's IPv6 underlay address and IPv6 pod subnet. */
  ip6?: string;
  subnet6?: string;
  agent?: { pid?: number; running: boolean; ready: boolean; reason: string; peers: number };
  /** Manifest mode: the DaemonSet's pod on the node, and its readiness probe's answer. */
  pod?: { name: string; image: string; running: boolean; ready: boolean; reason: string };
}

/** Manifest mode: the lab's running containers, asked at most once a second (a status asks per node). */
let containersSeen: { at: number; lab: string; names: Set<string> } | undefined;
function containersUp(lab: string): Set<string> {
  if (!containersSeen || containersSeen.lab !== lab || Date.now() - containersSeen.at > 1000) containersSeen = { at: Date.now(), lab, names: runningContainers(lab) };
  return containersSeen.names;
}

export function nodeView(s: LabState, n: LabNode): NodeView {
  let ready = true;
  let reason: string | undefined;
  try {
    loadNetwork(runtimeFor(n));
  } catch (e) {
    ready = false;
    reason = (e as Error).message;
  }
  const a = agentStatus(n);
  const running = s.manifest ? !!n.pod && containersUp(s.name).has(n.pod.containers[0] ?? "") : agentRunning(n);
  return {
    name: n.name, role: n.role, ready, ...(reason ? { reason } : {}), ip: n.ip,
    ...(a?.subnet ? { subnet: a.subnet } : {}), ...(a?.vtepMac ? { vtepMac: a.vtepMac } : {}),
    ...(n.ip6 ? { ip6: n.ip6 } : {}), ...(a?.ipv6Subnet ? { subnet6: a.ipv6Subnet } : {}),
    ...(s.cniInstalled ? { agent: { pid: n.agentPid, running, ready: !!a?.ready && running, reason: a?.reason ?? "", peers: a?.peers ?? 0 } } : {}),
    ...(n.pod ? { pod: { name: n.pod.name, image: n.pod.image, running, ...podReady(s, n) } } : {}),
  };
}
