// Installing and removing gauze on a lab, the ways a cluster does it: the plugin into every
// node's bin dir and an agent per node (a DaemonSet rolling out; in manifest mode the
// manifest's own DaemonSet run by the lab's kubelet), `gauze uninstall` on each node (the
// uninstall DaemonSet in manifest mode), a backend switch (the network config changed, then the
// agents restarted one node at a time) and an image rollout.
import { copyFileSync, existsSync, linkSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { gauzeExecutable, runSync } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { manifestObjects } from "../deploy/manifest.ts";
import { storeArgs } from "../store/flags.ts";
import { agentStatus, startAgent, waitReady } from "./agents.ts";
import { initRegistry, storeFlags } from "./registry.ts";
import { stopAgentProcess } from "./processes.ts";
import { containerLogs, ensureImage, manifestOf, podman, runDaemonPod, runPod, runningContainers, stopDaemonPod, waitPodReady } from "./kube/kubelet.ts";
import { mirrorNode, mirrorPodStatus } from "./kube/mirror.ts";
import { type LabBackend, type LabNode, type LabState, type Progress, findNode, saveLab, withLab } from "./state.ts";

/** Puts the gauze executable into a node's CNI bin dir (a hard link: no copy of 100 MB per node). */
export function installBinary(n: LabNode): void {
  const dst = join(n.root, "opt/cni/bin/gauze");
  if (existsSync(dst)) return;
  const src = gauzeExecutable();
  try {
    linkSync(src, dst);
  } catch {
    try { symlinkSync(src, dst); } catch { copyFileSync(src, dst); }
  }
}

/** "Installs gauze": the plugin into every node's bin dir, the agent on every node (a DaemonSet). */
export async function installCni(s: LabState, progress: Progress): Promise<void> {
  const t0 = performance.now();
  if (s.manifest) {
    // kubectl apply: the DaemonSet's pod on every node at once.
    ensureImage(s.name, s.manifest.image, progress);
    for (const n of s.nodes) {
      n.pod = runDaemonPod(s, n, s.manifest.image);
      saveLab(s);
    }
    s.cniInstalled = true;
    saveLab(s);
    await waitPodReady(s, s.nodes);
    for (const n of s.nodes) await mirrorNode(s, n);
    const subnets = s.nodes.map((n) => `${n.name} ${agentStatus(n)?.subnet}`).join(", ");
    progress(`gauze installed from ${s.manifest.file}: DaemonSet ${s.manifest.daemonSet} ready on ${s.nodes.length} node(s) (${subnets}) in ${(performance.now() - t0).toFixed(0)} ms`);
    return;
  }
  for (const n of s.nodes) {
    installBinary(n);
    startAgent(s, n);
  }
  s.cniInstalled = true;
  saveLab(s);
  await waitReady(s.nodes);
  // The Nodes now carry their leases' podCIDRs and Ready.
  for (const n of s.nodes) await mirrorNode(s, n);
  const subnets = s.nodes.map((n) => `${n.name} ${agentStatus(n)?.subnet}`).join(", ");
  progress(`gauze installed: agents ready, subnets leased (${subnets}) in ${(performance.now() - t0).toFixed(0)} ms`);
}

/** Installs gauze on a lab made with --no-cni (every node at once, as a DaemonSet rolls out). */
export async function labInstall(lab: string, progress: Progress): Promise<void> {
  await withLab(lab, async (s) => {
    if (s.cniInstalled) throw new Error(`gauze is installed on lab ${lab} already`);
    await installCni(s, progress);
  });
}

/**
 * `gauze uninstall` on each node (or one), run inside the node as the pod of an uninstall
 * DaemonSet would run it: the agent stops first, then everything gauze made goes.
 */
export async function labUninstall(lab: string, progress: Progress, only?: string): Promise<void> {
  await withLab(lab, async (s) => {
    const nodes = only ? [findNode(s, only)] : s.nodes;
    if (s.manifest) {
      await uninstallByDaemonSet(s, nodes, progress);
      if (!only) s.cniInstalled = false;
      await mirrorAfterUninstall(s, nodes);
      return;
    }
    for (const n of nodes) {
      await stopAgentProcess(n, 1000);
      n.agentPid = undefined;
      const endpoints = s.store.endpoints;
      const argv = [gauzeExecutable(), "uninstall", "--node", n.name, "--root", n.root, "--bin-dir", join(n.root, "opt/cni/bin"), ...storeArgs({ ...storeFlags(s), ...(endpoints ? { etcdEndpoints: endpoints } : {}) })];
      const r = runSync(argv, { netns: netnsPath(n.netns) });
      if (r.status !== 0) throw new Error(`gauze uninstall on ${n.name} failed: ${r.stderr.trim() || r.stdout.trim()}`);
      progress(r.stdout.trim());
      for (const p of s.pods.filter((x) => x.node === n.name)) {
        p.phase = "Pending";
        p.reason = `node ${n.name}: gauze was uninstalled (the pod's network is gone)`;
      }
    }
    if (!only) s.cniInstalled = false;
    await mirrorAfterUninstall(s, nodes);
  });
}

/** The Nodes NotReady again, their pods Pending. */
async function mirrorAfterUninstall(s: LabState, nodes: LabNode[]): Promise<void> {
  for (const n of nodes) await mirrorNode(s, n);
  for (const p of s.pods.filter((x) => nodes.some((n) => n.name === x.node))) await mirrorPodStatus(s, p);
}

/**
 * Switches the lab's backend as an operator would: the network config's Backend block changed,
 * then the agents restarted one node at a time. Each agent removes what the old backend made
 * (the VXLAN device, stale routes) and programs the new one.
 */
export async function labSetBackend(lab: string, backend: LabBackend, progress: Progress): Promise<void> {
  await withLab(lab, async (s) => {
    if (s.manifest) throw new Error(`lab ${lab} runs a manifest: change its ConfigMap's net-conf.json and roll the DaemonSet instead`);
    if ((backend === "host-gw" || backend === "macvlan") && s.underlaySubnets === 2) throw new Error(`${backend} needs every node on one L2 segment; this lab has two underlay subnets (use vxlan-direct)`);
    if ((backend === "macvlan") !== (s.backend === "macvlan")) throw new Error("switching to or from macvlan changes the pod network (macvlan pods live on the underlay): make a new lab instead");
    initRegistry(s, s.podCidr, backend);
    s.backend = backend;
    saveLab(s);
    await restartAgents(s, backend, progress);
  });
}

/**
 * Switches the lab's datapath on running nodes (`--datapath` of every agent, then each agent
 * restarted one node at a time). On ebpf the agent attaches to the pods already there; on
 * classic it removes every program, link, map and pin the eBPF datapath had made, so nothing of
 * the other datapath stays behind.
 */
export async function labSetDatapath(lab: string, datapath: "classic" | "ebpf", progress: Progress): Promise<void> {
  await withLab(lab, async (s) => {
    if (s.manifest) throw new Error(`lab ${lab} runs a manifest: set "Datapath" in its ConfigMap's net-conf.json and roll the DaemonSet instead`);
    if (s.backend === "macvlan" && datapath === "ebpf") throw new Error("macvlan pods live on the underlay, not behind a veth: the eBPF datapath has nothing to redirect there (use host-gw or vxlan)");
    s.datapath = datapath;
    saveLab(s);
    await restartAgents(s, `the ${datapath} datapath`, progress);
  });
}

/** The agents restarted one node at a time, each waited for until ready (a DaemonSet's rolling update). */
async function restartAgents(s: LabState, what: string, progress: Progress): Promise<void> {
  if (!s.cniInstalled) return;
  for (const n of s.nodes) {
    const t0 = performance.now();
    await stopAgentProcess(n, 1000);
    startAgent(s, n);
    saveLab(s);
    await waitReady([n]);
    progress(`${n.name}: agent restarted on ${what} in ${(performance.now() - t0).toFixed(0)} ms`);
  }
}

/**
 * Manifest mode: what the README says to do on a cluster. The agent's pod goes (kubectl delete
 * ds), then the uninstall DaemonSet (`gauze manifests --uninstall`, same image) runs on each
 * node until its pod says it is done, and is deleted.
 */
async function uninstallByDaemonSet(s: LabState, nodes: LabNode[], progress: Progress): Promise<void> {
  const m = manifestOf(manifestObjects({ uninstall: true, image: s.manifest!.image, podCidr: s.podCidr, backend: s.backend }), "gauze manifests --uninstall");
  for (const n of nodes) {
    stopDaemonPod(s, n);
    const pod = runPod(s, n, m, s.manifest!.image);
    const until = Date.now() + 30_000;
    let log = "";
    for (;;) {
      log = containerLogs(s.name, pod.containers[0]!);
      if (/gauze removed from/.test(log)) break;
      if (!runningContainers(s.name).has(pod.containers[0]!) || Date.now() > until) {
        for (const c of pod.containers) podman(s.name, ["rm", "-f", "-t", "0", c]);
        throw new Error(`the uninstall pod on ${n.name} did not finish: ${log.trim().split("\n").slice(-3).join(" | ")}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const c of pod.containers) podman(s.name, ["rm", "-f", "-t", "5", c]);
    progress(log.split("\n").find((l) => l.startsWith("gauze removed from")) ?? `gauze removed from ${n.name}`);
    for (const p of s.pods.filter((x) => x.node === n.name)) {
      p.phase = "Pending";
      p.reason = `node ${n.name}: gauze was uninstalled (the pod's network is gone)`;
    }
  }
}

/**
 * `kubectl set image` on the DaemonSet: one node at a time (maxUnavailable 1), the old pod
 * deleted (its agent stops; the dataplane stays), the new one started and waited for until its
 * readiness probe passes, then the next node.
 */
export async function labRollout(lab: string, image: string, progress: Progress): Promise<{ node: string; ms: number }[]> {
  return withLab(lab, async (s) => {
    if (!s.manifest || !s.cniInstalled) throw new Error(`lab ${lab} does not run a manifest: gauze lab up --manifest deploy/kube-gauze.yml`);
    ensureImage(lab, image, progress);
    const out: { node: string; ms: number }[] = [];
    for (const n of s.nodes) {
      const t0 = performance.now();
      stopDaemonPod(s, n);
      n.pod = runDaemonPod(s, n, image);
      saveLab(s);
      await waitPodReady(s, [n]);
      const ms = Math.round(performance.now() - t0);
      out.push({ node: n.name, ms });
      progress(`${n.pod.name}: ${image}, ready in ${ms} ms`);
    }
    s.manifest.image = image;
    return out;
  });
}
