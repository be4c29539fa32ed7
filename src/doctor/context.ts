// What the checks look at, gathered once per run: the node's paths, the agent's own report,
// the active CNI config. Doctor runs inside the node's network namespace, so /proc/sys/net,
// netlink and iptables all show that node.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { nodePaths, type NodePaths } from "../node/paths.ts";
import type { AgentStatus } from "../agent/status.ts";
import { type NetworkList, loadNetwork } from "../node/conf-dir.ts";
import type { Rtnl } from "../kernel/netlink/index.ts";

export interface DoctorContext {
  /** The netlink client checks read links, addresses, routes, neighbours and FDB with. */
  nl: Rtnl;
  root: string;
  paths: NodePaths;
  binDir: string;
  /** The lab and node, when doctoring a lab node. */
  lab?: string;
  node?: string;
  /** Where the caller knows how (a lab node): starts the node's agent again, for --fix. */
  restartAgent?: () => Promise<string>;
  agent?: AgentStatus;
  network?: NetworkList;
  networkError?: string;
  healthUrl: string;
  /** With --kubeconfig: the Kubernetes checks run against that cluster. */
  kubeconfig?: string;
}

export interface DoctorOptions {
  root: string;
  /** The node's CNI bin dir (default: <root>/opt/cni/bin; the agent's container sees the node's at /host/opt/cni/bin). */
  binDir?: string;
  lab?: string;
  node?: string;
  kubeconfig?: string;
  restartAgent?: () => Promise<string>;
}

export function gatherContext(o: DoctorOptions, nl: Rtnl): DoctorContext {
  const paths = nodePaths(o.root);
  let agent: AgentStatus | undefined;
  try {
    agent = JSON.parse(readFileSync(paths.statusFile, "utf8")) as AgentStatus;
  } catch {
    // no agent report
  }
  const ctx: DoctorContext = { nl, root: o.root, paths, ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), binDir: o.binDir ?? join(o.root || "/", "opt/cni/bin"), ...(o.lab ? { lab: o.lab } : {}), ...(o.node ? { node: o.node } : {}), ...(o.restartAgent ? { restartAgent: o.restartAgent } : {}), ...(agent ? { agent } : {}),
    healthUrl: `http://127.0.0.1:${(agent?.healthAddr ?? "127.0.0.1:9317").split(":").pop()}` };
  try {
    ctx.network = loadNetwork(paths.confDir);
  } catch (e) {
    ctx.networkError = (e as Error).message;
  }
  return ctx;
}

/**
 * Commands a fix line holds as they are, so it can be pasted: on a lab node with the node and
 * --name (with two labs a bare command fails), elsewhere the DaemonSet's (deploy/kube-gauze.yml).
 */
export function fixCommands(ctx: Pick<DoctorContext, "lab" | "node">): { doctorFix: string; startAgent: string; restartAgent: string; agentLog: string } {
  if (ctx.lab && ctx.node) {
    const at = `${ctx.node} --name ${ctx.lab}`;
    return {
      doctorFix: `gauze doctor --fix --node ${at}`,
      startAgent: `gauze lab node start-agent ${at}`,
      restartAgent: `gauze lab node stop-agent ${at} && gauze lab node start-agent ${at}`,
      agentLog: `gauze lab logs ${at}`,
    };
  }
  return {
    doctorFix: "gauze doctor --fix",
    startAgent: "kubectl -n kube-gauze get pods -o wide (the DaemonSet's pod for this node)",
    restartAgent: "kubectl -n kube-gauze delete pod <the gauze pod on this node> (the DaemonSet starts it again)",
    agentLog: "kubectl -n kube-gauze logs daemonset/gauze",
  };
}
