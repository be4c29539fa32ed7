// The lab's node agents when it runs them directly (not from a manifest): `gauze agent` started
// inside each node's namespace with the node's tree as its root, its status file read back, and
// stopped or started again as `lab node stop-agent|start-agent` asks. An agent counts as running
// only while its PID still runs a gauze executable (processes.ts).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gauzeExecutable } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { nodePaths } from "../node/paths.ts";
import type { AgentStatus } from "../agent/status.ts";
import { storeArgs } from "../store/flags.ts";
import { storeFlags } from "./registry.ts";
import { loadNetwork, runtimeFor } from "./runtime.ts";
import { agentRunning, spawnInNetns, stopAgentProcess } from "./processes.ts";
import { runDaemonPod, stopDaemonPod, waitPodReady } from "./kube/kubelet.ts";
import { agentKubeconfig } from "./kube/credentials.ts";
import { AGENT_PORT, type LabNode, type LabState, findNode, saveLab, withLab } from "./state.ts";

export function agentLog(n: LabNode): string {
  return join(n.root, "var/log/gauze-agent.log");
}

// Resync every 5 minutes: registry events already apply at once; a long period keeps a fault
// that `gauze lab break` injects in place long enough for doctor to find it.
// With the lab's API (every lab but those of older gauze), the agent gets its kubeconfig: with
// --store file or etcd it reads the API only for NetworkPolicy.
export function startAgent(s: LabState, n: LabNode): void {
  const argv = [gauzeExecutable(), "agent", "--node", n.name, "--iface", "eth0", ...storeArgs(storeFlags(s)),
    "--root", n.root, "--health-addr", `127.0.0.1:${AGENT_PORT}`, "--resync", "5m", ...(s.noObserve || n.noObserve ? ["--no-observe"] : []), ...(s.policyEstablished ? ["--policy-established", s.policyEstablished] : []), ...(s.observer ? ["--observer", s.observer] : []), ...(s.datapath ? ["--datapath", s.datapath] : []),
    ...(s.kube && existsSync(agentKubeconfig(s.name)) ? ["--kubeconfig", agentKubeconfig(s.name)] : [])];
  n.agentPid = spawnInNetns(netnsPath(n.netns), argv, agentLog(n));
}

export function agentStatus(n: LabNode): AgentStatus | undefined {
  try {
    return JSON.parse(readFileSync(nodePaths(n.root).statusFile, "utf8")) as AgentStatus;
  } catch {
    return undefined;
  }
}

export async function waitReady(nodes: LabNode[], timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    // Ready means this agent process says so (a report left by an earlier process does not count).
    const waiting = nodes.filter((n) => {
      try {
        loadNetwork(runtimeFor(n));
        const a = agentStatus(n);
        return !(a?.ready && a.pid === n.agentPid);
      } catch {
        return true;
      }
    });
    if (waiting.length === 0) return;
    if (Date.now() > until) {
      const why = waiting.map((n) => `${n.name}: ${agentStatus(n)?.reason || "agent not reporting"} (log: ${agentLog(n)})`);
      throw new Error(`nodes not Ready after ${timeoutMs / 1000} s: ${why.join("; ")}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function agentStop(lab: string, name: string, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  await withLab(lab, async (s) => {
    const n = findNode(s, name);
    if (s.manifest) return stopDaemonPod(s, n);
    await stopAgentProcess(n, 1000, signal);
    n.agentPid = undefined;
  });
}

/** `observe`: "off" starts this node's agent without observing from now on (its earlier programs are removed), "on" undoes that. */
export async function agentStart(lab: string, name: string, observe?: "on" | "off"): Promise<void> {
  await withLab(lab, async (s) => {
    const n = findNode(s, name);
    if (observe) {
      if (s.manifest) throw new Error("--observe: a manifest lab's agents run as its DaemonSet says (its args), not per node");
      if (agentRunning(n) && (observe === "off") !== !!n.noObserve) throw new Error(`--observe ${observe}: the agent on ${n.name} is running; stop it first (gauze lab node stop-agent ${n.name} --name ${lab})`);
      if (observe === "off") n.noObserve = true;
      else delete n.noObserve;
    }
    if (s.manifest) {
      if (!n.pod) n.pod = runDaemonPod(s, n, s.manifest.image);
      saveLab(s);
      return waitPodReady(s, [n]);
    }
    if (agentRunning(n)) return; // a zombie or a recycled PID is not our agent
    startAgent(s, n);
    saveLab(s);
    await waitReady([n]);
  });
}
