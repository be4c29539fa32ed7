// The lab's machines: an underlay namespace holding the "switch" (a bridge, 172.18.0.1/16, kind's
// network; or two routed /24 segments), and per node a namespace `gz-<node>` with eth0 on it,
// forwarding on and bridged traffic seen by iptables, as a kubeadm node has, and a tree of node
// directories. Nodes join (made, registered with the lab's API as a Node, given an agent)
// and leave (their pods, agent, lease and namespace removed) as `kubectl delete node` would.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { addNetns, delNetns, netnsPath, openNetns } from "../kernel/netns.ts";
import { closeFd } from "../kernel/files.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { addAddr, addBridge, addRoute, addVeth, setLink, withRtnl } from "../kernel/netlink/index.ts";
import { formatIP, formatPrefix, parseIP } from "../net/cidr.ts";
import { resolveNetwork } from "../store/registry.ts";
import { removeObserverPins } from "../agent/observing.ts";
import { removeDatapathPins } from "../agent/datapath.ts";
import { agentStatus, startAgent, waitReady } from "./agents.ts";
import { installBinary } from "./install.ts";
import { tearDownPod } from "./pods.ts";
import { releaseNodeLease } from "./registry.ts";
import { stopAgentProcess } from "./processes.ts";
import { deleteNode, registerNode } from "./kube/cluster.ts";
import { hasApi, mirrorNode, nodeDetails } from "./kube/mirror.ts";
import { runDaemonPod, stopDaemonPod, waitPodReady } from "./kube/kubelet.ts";
import { type LabNode, type LabState, type Progress, UNDERLAY6, UNDERLAY_GW, findNode, labDir, saveLab, validateNodeName, withLab } from "./state.ts";

/** An IPv6 address as the kernel prints it (RFC 5952): fd47:172:18:0::4 is fd47:172:18::4. */
const canonical = (ip: string) => formatIP(parseIP(ip)!);

/** A node's underlay address and prefix: one /16 (kind's network), or two /24s taking turns. */
function nodeAddress(idx: number, subnets: number): { ip: string; prefixLen: number; gw: string; segment: number; ip6: string; gw6: string } {
  if (subnets === 2) {
    const segment = idx % 2;
    return { ip: `172.18.${segment}.${idx + 2}`, prefixLen: 24, gw: `172.18.${segment}.1`, segment, ip6: canonical(`${UNDERLAY6}:${segment}::${(idx + 2).toString(16)}`), gw6: canonical(`${UNDERLAY6}:${segment}::1`) };
  }
  return { ip: `172.18.${Math.floor((idx + 2) / 256)}.${(idx + 2) % 256}`, prefixLen: 16, gw: UNDERLAY_GW, segment: 0, ip6: `${UNDERLAY6}::${(idx + 2).toString(16)}`, gw6: `${UNDERLAY6}::1` };
}

/** IPv6 duplicate address detection off (0) for the links made from now on in a namespace, or back on (1, the kernel's default). */
export function linkDad(netns: string, on: boolean): void {
  ensureSysctl("net.ipv6.conf.default.accept_dad", on ? "1" : "0", netns);
}

/** The underlay namespace and its bridge(s): one segment, or two with the namespace routing between them. */
export function createUnderlay(s: LabState, o: { underlaySubnets?: 1 | 2; ipv6?: boolean }): void {
  addNetns(s.underlayNs);
  if (o.ipv6) linkDad(netnsPath(s.underlayNs), false);
  withRtnl({ netns: netnsPath(s.underlayNs) }, (nl) => {
    if (o.underlaySubnets === 2) {
      // Two L2 segments with the underlay namespace as the router between them.
      nl.run([setLink({ index: 1, name: "lo" }, { up: true }), addBridge({ name: "br0", up: true }), addBridge({ name: "br1", up: true })]);
      nl.run([addAddr(nl.link("br0")!, "172.18.0.1/24"), addAddr(nl.link("br1")!, "172.18.1.1/24")]);
      if (o.ipv6) nl.run([addAddr(nl.link("br0")!, `${UNDERLAY6}:0::1/64`), addAddr(nl.link("br1")!, `${UNDERLAY6}:1::1/64`)]);
    } else {
      nl.run([setLink({ index: 1, name: "lo" }, { up: true }), addBridge({ name: "br0", up: true })]);
      nl.run([addAddr(nl.link("br0")!, `${UNDERLAY_GW}/16`)]);
      if (o.ipv6) nl.run([addAddr(nl.link("br0")!, `${UNDERLAY6}::1/64`)]);
    }
  });
  if (o.underlaySubnets === 2) ensureSysctl("net.ipv4.ip_forward", "1", netnsPath(s.underlayNs));
  if (o.underlaySubnets === 2 && o.ipv6) ensureSysctl("net.ipv6.conf.all.forwarding", "1", netnsPath(s.underlayNs));
}

/** Creates node namespaces, their underlay veths and addresses: one netlink batch per side. */
export function createNodes(s: LabState, specs: { name: string; role: LabNode["role"]; idx: number }[]): LabNode[] {
  for (const sp of specs) {
    const bad = validateNodeName(sp.name);
    if (bad) throw new Error(bad);
  }
  const subnets = s.underlaySubnets ?? 1;
  const nodes = specs.map((sp): LabNode => ({ name: sp.name, role: sp.role, netns: `gz-${sp.name}`, ip: nodeAddress(sp.idx, subnets).ip, ...(s.podCidr6 ? { ip6: nodeAddress(sp.idx, subnets).ip6 } : {}), idx: sp.idx, root: join(labDir(s.name), "nodes", sp.name) }));
  for (const n of nodes) {
    addNetns(n.netns);
    // The lab builds a node's eth0 in milliseconds; a real node's has been up for long. Without
    // this, eth0's IPv6 link-local stays tentative (duplicate address detection) for 2 s. Only
    // eth0: the links gauze makes later meet the kernel's default, as on a real node.
    if (s.podCidr6) linkDad(netnsPath(n.netns), false);
  }
  withRtnl({ netns: netnsPath(s.underlayNs) }, (under) => {
    for (const n of nodes) {
      // The node's eth0 is made straight inside the node's namespace, its underlay end on its segment's bridge.
      const br = under.link(`br${nodeAddress(n.idx, subnets).segment}`);
      if (!br) throw new Error(`the lab's underlay bridge br${nodeAddress(n.idx, subnets).segment} is missing in ${s.underlayNs}`);
      const fd = openNetns(netnsPath(n.netns));
      try {
        under.run([addVeth({ name: `gzu${n.idx}`, master: br, up: true }, { name: "eth0", netnsFd: fd, netnsLabel: n.netns })]);
      } finally {
        closeFd(fd);
      }
    }
  });
  for (const n of nodes) {
    withRtnl({ netns: netnsPath(n.netns) }, (nl) => {
      const eth0 = nl.link("eth0")!;
      const a = nodeAddress(n.idx, subnets);
      nl.run([setLink({ index: 1, name: "lo" }, { up: true }), addAddr(eth0, `${a.ip}/${a.prefixLen}`), setLink(eth0, { up: true }), addRoute({ dst: "default", via: a.gw, dev: eth0 })]);
      if (s.podCidr6) nl.run([addAddr(eth0, `${a.ip6}/64`), addRoute({ dst: "::/0", via: a.gw6, dev: eth0 })]);
    });
    if (s.podCidr6) linkDad(netnsPath(n.netns), true);
    // What a kubeadm node has: forwarding on, bridged traffic seen by iptables.
    ensureSysctl("net.ipv4.ip_forward", "1", netnsPath(n.netns));
    ensureSysctl("net.bridge.bridge-nf-call-iptables", "1", netnsPath(n.netns));
    for (const d of ["etc/cni/net.d", "opt/cni/bin", "run", "var/lib/cni", "var/log"]) mkdirSync(join(n.root, d), { recursive: true });
  }
  return nodes;
}

/** Manifest mode: the kubelet registers its Node; the controller manager gives it the node's /24 of the cluster CIDR. */
export async function registerKubeNode(s: LabState, n: LabNode): Promise<void> {
  const net = resolveNetwork({ Network: s.podCidr });
  const step = 1n << BigInt(32 - net.subnetLen);
  const podCIDR = formatPrefix({ ip: { family: 4, value: net.network.ip.value + BigInt(n.idx) * step }, bits: net.subnetLen });
  n.hostPaths = true;
  await registerNode(s.name, n.name, n.ip, podCIDR, nodeDetails(s, n, { ok: false, reason: "the DaemonSet's pod has not made the node Ready yet" }));
}

export async function nodeAdd(lab: string, progress: Progress, name?: string): Promise<LabNode> {
  return withLab(lab, async (s) => {
    const idx = Math.max(-1, ...s.nodes.map((n) => n.idx)) + 1;
    const nodeName = name ?? `${lab}-worker${s.nodes.filter((n) => n.role === "worker").length + 1 === 1 ? "" : s.nodes.filter((n) => n.role === "worker").length + 1}`;
    const bad = validateNodeName(nodeName);
    if (bad) throw new Error(bad);
    if (s.nodes.some((n) => n.name === nodeName)) throw new Error(`node ${nodeName} exists already`);
    const [n] = createNodes(s, [{ name: nodeName, role: "worker", idx }]);
    s.nodes.push(n!);
    try {
      if (s.manifest) await registerKubeNode(s, n!);
      else await mirrorNode(s, n!);
      if (s.cniInstalled && s.manifest) {
        n!.pod = runDaemonPod(s, n!, s.manifest.image);
        saveLab(s);
        await waitPodReady(s, [n!]);
      } else if (s.cniInstalled) {
        installBinary(n!);
        startAgent(s, n!);
        saveLab(s);
        await waitReady([n!]);
      }
      if (s.cniInstalled) await mirrorNode(s, n!);
    } catch (e) {
      // A node that did not join is not left half made (a namespace no lab state names).
      await removeNode(s, n!).catch(() => undefined);
      saveLab(s);
      throw new Error(`node ${nodeName} did not join: ${(e as Error).message}`);
    }
    progress(`node ${n!.name} joined (${n!.ip}${agentStatus(n!)?.subnet ? `, subnet ${agentStatus(n!)!.subnet}` : ""})`);
    return n!;
  });
}

/** Removes a node as `kubectl delete node` would: its pods, its agent, its lease, its namespace. */
export async function nodeRm(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    await removeNode(s, findNode(s, name));
  });
}

async function removeNode(s: LabState, n: LabNode): Promise<void> {
  for (const p of s.pods.filter((x) => x.node === n.name)) await tearDownPod(s, p);
  s.pods = s.pods.filter((x) => x.node !== n.name);
  await stopAgentProcess(n);
  if (s.manifest) stopDaemonPod(s, n);
  else await releaseNodeLease(s, n.name);
  // The namespace and the node's tree go even when the API server cannot be told.
  try {
    if (hasApi(s)) await deleteNode(s.name, n.name);
  } finally {
    // Its agent's eBPF datapath and observer, pinned to outlive the agent: they go with the node
    // (the datapath's pins once stayed, holding its programs after the node was gone).
    removeDatapathPins(n.name, netnsPath(n.netns));
    removeObserverPins(n.name, netnsPath(n.netns));
    delNetns(n.netns);
    rmSync(n.root, { recursive: true, force: true });
    s.nodes = s.nodes.filter((x) => x !== n);
  }
}
