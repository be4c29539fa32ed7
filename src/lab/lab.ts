// The lab: a kind-like cluster made of network namespaces on this host. `lab up` readies the host
// (host.ts), makes the underlay and the nodes (nodes.ts), the lab's Kubernetes API (kube/: every
// lab has one; in manifest mode it is also the subnet registry, else the lab's file registry or
// etcd is), and installs gauze (install.ts); `lab down` takes all of it
// away again. With CNI installed, each node runs the real gauze agent and the runtime stand-in
// runs the real plugin. Nothing is added to the host's own network namespace.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { delNetns, unmountUnder } from "../kernel/netns.ts";
import { DropWatch } from "../kernel/tracefs.ts";
import { netnsPath } from "../kernel/netns.ts";
import { removeObserverPins } from "../agent/observing.ts";
import { removeDatapathPins } from "../agent/datapath.ts";
import { formatPrefix } from "../net/cidr.ts";
import { resolveNetwork } from "../store/registry.ts";
import { ManifestError } from "../deploy/manifest.ts";
import type { EtcdAuthFlags } from "../store/flags.ts";
import { cleanHost, prepareHost } from "./host.ts";
import { createNodes, createUnderlay, registerKubeNode } from "./nodes.ts";
import { installCni } from "./install.ts";
import { initRegistry, startEtcd } from "./registry.ts";
import { stopAgentProcess, stopPodServer, stopProcess } from "./processes.ts";
import { startControlPlane, stopControlPlane } from "./kube/cluster.ts";
import { makePki } from "./kube/credentials.ts";
import { mirrorNode } from "./kube/mirror.ts";
import { loadManifest, removePodmanState, writeConfigMaps } from "./kube/kubelet.ts";
import { type LabBackend, type LabState, type Progress, LAB_POD_CIDR6, MACVLAN_POD_CIDR, UNDERLAY6, UNDERLAY_CIDR, labDir, labExists, loadLab, lockLab, nodeNames, saveLab, validateLabName, podServerName } from "./state.ts";

export interface UpOptions {
  store?: "file" | "etcd";
  /** etcd to use instead of starting one (must be reachable from the nodes). */
  etcdEndpoints?: string;
  /** TLS and authentication for that etcd, passed on to every agent. */
  etcdAuth?: EtcdAuthFlags;
  name: string;
  nodes: number;
  podCidr: string;
  backend: LabBackend;
  /** 2: nodes alternate between two underlay subnets (172.18.0.0/24, 172.18.1.0/24) routed by the underlay namespace. */
  underlaySubnets?: 1 | 2;
  cni: boolean;
  progress: Progress;
  /** Run this manifest's DaemonSet on the nodes (as kubelets would) instead of starting agents directly. */
  manifest?: string;
  /** Dual-stack: an IPv6 pod network next to the IPv4 one, and IPv6 on the underlay. */
  ipv6?: boolean;
  /** Agents without flow recording (--no-observe). */
  noObserve?: boolean;
  /** Agents that judge established connections again after a policy change. */
  policyRecheck?: boolean;
  /** The agents' --observer: auto, ebpf or ring. */
  observer?: "auto" | "ebpf" | "ring";
  /** The agents' --datapath: classic or ebpf. */
  datapath?: "classic" | "ebpf";
}

export async function labUp(o: UpOptions): Promise<LabState> {
  const bad = validateLabName(o.name);
  if (bad) throw new Error(bad);
  if (labExists(o.name)) throw new Error(`lab ${o.name} exists already: gauze lab down --name ${o.name} first, or pick another --name`);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 250) throw new Error(`--nodes ${o.nodes}: give 1 to 250`);
  const manifest = o.manifest ? manifestPlan(o) : undefined;
  if (o.backend === "macvlan") {
    if (o.underlaySubnets === 2) throw new Error("macvlan needs every node on one L2 segment; leave out --underlay-subnets 2");
    if (o.podCidr === "10.244.0.0/16") {
      o = { ...o, podCidr: MACVLAN_POD_CIDR };
      o.progress(`macvlan: pods join the underlay, so the pod network is ${MACVLAN_POD_CIDR} (the upper half of 172.18.0.0/16, which no node uses)`);
    }
  }
  if (manifest) {
    o = { ...o, podCidr: manifest.podCidr, backend: manifest.backend as UpOptions["backend"], store: undefined };
  }
  if (o.ipv6 && (o.manifest || !["vxlan", "vxlan-direct", "host-gw"].includes(o.backend))) {
    throw new Error(o.manifest ? "--ipv6 with --manifest: the lab's Kubernetes API gives Nodes IPv4 podCIDRs only; leave out one of them" : `--ipv6 with --backend ${o.backend}: dual-stack runs on vxlan, vxlan-direct and host-gw`);
  }
  const s: LabState = {
    name: o.name, podCidr: o.podCidr, backend: o.backend, underlayNs: `gz-${o.name}-underlay`, underlayCidr: UNDERLAY_CIDR, ...(o.underlaySubnets === 2 ? { underlaySubnets: 2 } : {}), ...(o.ipv6 ? { podCidr6: LAB_POD_CIDR6 } : {}), ...(o.noObserve ? { noObserve: true as const } : {}), ...(o.policyRecheck ? { policyEstablished: "recheck" as const } : {}), ...(o.observer ? { observer: o.observer } : {}), ...(o.datapath ? { datapath: o.datapath } : {}),
    registryDir: join(labDir(o.name), "registry"), store: { kind: manifest ? "kube" : o.store ?? "file", ...(o.etcdEndpoints ? { endpoints: o.etcdEndpoints } : {}), ...(o.etcdAuth ? { etcdAuth: o.etcdAuth } : {}) }, cniInstalled: false, nodes: [], pods: [], createdAt: new Date().toISOString(),
  };
  // The lab is registered (its lab.json saved) under the host lock, so that a last `lab down`
  // running meanwhile sees it and leaves the host's mounts in place.
  prepareHost(o.progress, () => saveLab(s));
  try {
    const t0 = performance.now();
    createUnderlay(s, o);
    // The control plane's keys are made (openssl, in other processes) while the nodes are.
    const pki = makePki(s.name);
    pki.catch(() => undefined); // awaited below; a failure meanwhile is not an unhandled one
    s.nodes = createNodes(s, nodeNames(o.name, o.nodes).map((n, idx) => ({ ...n, idx })));
    if (s.store.kind === "etcd" && !s.store.endpoints) await startEtcd(s, o.progress);
    const tApi = performance.now();
    await pki;
    if (manifest) {
      s.manifest = manifest.run;
      saveLab(s);
      writeConfigMaps(s, manifest.m);
    }
    await startControlPlane(s, manifest?.m.objects);
    saveLab(s);
    if (manifest) {
      for (const n of s.nodes) await registerKubeNode(s, n);
    } else {
      initRegistry(s, o.podCidr, o.backend);
      for (const n of s.nodes) await mirrorNode(s, n);
    }
    o.progress(`control plane: the Kubernetes API on https://172.18.0.1:6443 (and ${s.kube?.local} for this host's kubectl: gauze lab kubeconfig --name ${s.name}), ${s.nodes.length} Node(s) registered${manifest ? " with a podCIDR each" : ""} in ${(performance.now() - tApi).toFixed(0)} ms`);
    saveLab(s);
    o.progress(`lab ${o.name}: ${o.nodes} node(s) on underlay ${o.underlaySubnets === 2 ? "172.18.0.0/24 and 172.18.1.0/24 (routed)" : UNDERLAY_CIDR}${o.ipv6 ? ` and ${UNDERLAY6}::/${o.underlaySubnets === 2 ? "56 (two /64s)" : "64"}, pods dual-stack (IPv6 ${LAB_POD_CIDR6})` : ""} (${s.nodes.map((n) => `${n.name} ${n.ip}`).join(", ")}) in ${(performance.now() - t0).toFixed(0)} ms`);
    if (o.cni) await installCni(s, o.progress);
    saveLab(s);
    return s;
  } catch (e) {
    saveLab(s);
    throw e;
  }
}

/** What `lab up --manifest` will run, checked before anything is made. */
function manifestPlan(o: UpOptions): { m: ReturnType<typeof loadManifest>; run: NonNullable<LabState["manifest"]>; podCidr: string; backend: string } {
  const file = o.manifest!.startsWith("/") ? o.manifest! : join(process.cwd(), o.manifest!);
  const m = loadManifest(file);
  const agent = m.daemonSet.spec.template.spec.containers[0]!;
  const args = [...(agent.command ?? []), ...(agent.args ?? [])];
  const store = args[args.indexOf("--store") + 1];
  if (args.includes("--store") && store !== "kube") throw new ManifestError(`${file}: the agent uses --store ${store}; the lab serves the Kubernetes API, so it runs manifests with --store kube`);
  if (!m.netConf?.Network) throw new ManifestError(`${file}: no ConfigMap with a net-conf.json that sets Network`);
  const net = resolveNetwork({ Network: m.netConf.Network, ...(m.netConf.Backend ? { Backend: m.netConf.Backend } : {}) });
  return {
    m, podCidr: formatPrefix(net.network), backend: net.backendType,
    run: { file, daemonSet: m.daemonSet.metadata.name, namespace: m.daemonSet.metadata.namespace ?? "default", image: agent.image },
  };
}

export async function labDown(name: string, progress: Progress): Promise<void> {
  const lock = lockLab(name);
  let s: LabState;
  try {
    s = loadLab(name);
    const t0 = performance.now();
    await Promise.all([...s.pods.map((p) => stopPodServer(p.serverPid, podServerName(p), 300)), ...s.nodes.map((n) => stopAgentProcess(n, 1000))]);
    await stopProcess(s.store?.etcdPid, 2000, "SIGTERM", s.store?.etcdDir);
    if (s.manifest) removePodmanState(name);
    await stopControlPlane(s);
    // The agents' drop watchers (tracefs instances): an agent killed outright leaves its own.
    for (const n of s.nodes) DropWatch.removeStale(`gauze-${n.name}-`);
    // And their eBPF programs, links and maps, pinned to outlive them (while the node's namespace is there).
    for (const n of s.nodes) removeDatapathPins(n.name, netnsPath(n.netns));
    for (const n of s.nodes) removeObserverPins(n.name, netnsPath(n.netns));
    // Deleting a namespace removes every link, route, neighbour and rule in it.
    for (const ns of [...s.pods.map((p) => p.netns), ...s.nodes.map((n) => n.netns), s.underlayNs]) {
      try { delNetns(ns); } catch (e) { progress(`could not remove namespace ${ns}: ${(e as Error).message}`); }
    }
    // Whatever a container runtime left mounted under the lab's tree goes before the tree.
    const mounts = unmountUnder(labDir(name));
    if (mounts) progress(`unmounted ${mounts} mount(s) left under ${labDir(name)}`);
    rmSync(labDir(name), { recursive: true, force: true });
    progress(`lab ${name} removed in ${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    lock.release();
  }
  cleanHost(progress);
}
