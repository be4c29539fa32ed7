// The lab: a kind-like cluster made of network namespaces on this host. An underlay namespace
// holds a bridge (172.18.0.1/16, kind's network); each node is a namespace with eth0 on it and a
// tree of node directories; with CNI installed, each node runs the real gauze agent and the
// runtime stand-in runs the real plugin. Nothing is added to the host's own namespace.
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, symlinkSync, copyFileSync, rmdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { runSync } from "../kernel/spawn.ts";
import { NETNS_DIR, addNetns, delNetns, netnsPath, openNetns, unmountNetnsDir } from "../kernel/netns.ts";
import { closeFd } from "../kernel/files.ts";
import { ensureSysctl } from "../kernel/sysctl.ts";
import { addAddr, addBridge, addRoute, addVeth, setLink, withRtnl } from "../kernel/netlink/index.ts";
import { FileRegistry } from "../store/file-registry.ts";
import { type StoreFlags, storeArgs } from "../store/open.ts";
import { nodePaths } from "../agent/node-files.ts";
import type { AgentStatus } from "../agent/agent.ts";
import { type LabNode, type LabPod, type LabState, LAB_HOME, findNode, findPod, labDir, labExists, listLabs, loadLab, lockLab, nodeNames, saveLab, validateLabName, validateNodeName, withLab } from "./state.ts";
import { type NodeRuntime, RuntimeError, addPod, delPod, loadNetwork } from "./runtime.ts";
import { gauzeExecutable, isOurProcess, spawnInNetns, stopProcess } from "./processes.ts";
import { unmountUnder } from "../kernel/netns.ts";
import { formatIP, formatPrefix, parseIP } from "../net/cidr.ts";
import { DropWatch } from "../kernel/tracefs.ts";
import { resolveNetwork } from "../store/registry.ts";
import { ManifestError, manifestObjects } from "../deploy/manifest.ts";
import { deleteNode, registerNode, startControlPlane, stopControlPlane } from "./cluster.ts";
import { containerLogs, ensureImage, loadManifest, manifestOf, podman, podReady, runPod, removePodmanState, runDaemonPod, runningContainers, stopDaemonPod, waitPodReady, writeConfigMaps } from "./kubelet.ts";

export const UNDERLAY_CIDR = "172.18.0.0/16";
const UNDERLAY_GW = "172.18.0.1";
export const AGENT_PORT = 9317;

export type Progress = (line: string) => void;

export interface UpOptions {
  store?: "file" | "etcd";
  /** etcd to use instead of starting one (must be reachable from the nodes). */
  etcdEndpoints?: string;
  /** TLS and authentication for that etcd, passed on to every agent. */
  etcdTls?: { cafile?: string; certfile?: string; keyfile?: string; username?: string; passwordFile?: string };
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
}

/** Dual-stack labs: the IPv6 pod network (one /64 per node, same index as its IPv4 /24) and the IPv6 underlay (ULA, inside the lab's namespaces only). */
export const LAB_POD_CIDR6 = "fd47:10:244::/56";
const UNDERLAY6 = "fd47:172:18";

/** The backends a lab runs: vxlan-direct is vxlan with DirectRouting. */
export type LabBackend = "vxlan" | "host-gw" | "vxlan-direct" | "macvlan" | "wireguard";
export const LAB_BACKENDS: readonly LabBackend[] = ["vxlan", "host-gw", "vxlan-direct", "macvlan", "wireguard"];
/** macvlan pods live on the underlay itself: their addresses come from its upper half, which no node uses. */
export const MACVLAN_POD_CIDR = "172.18.128.0/17";

/** The network config's Backend block for a lab backend. */
export function backendBlock(b: string): { Type: string; DirectRouting?: boolean } {
  return b === "vxlan-direct" ? { Type: "vxlan", DirectRouting: true } : { Type: b };
}

/** A node's underlay address and prefix: one /16 (kind's network), or two /24s taking turns. */
/** An IPv6 address as the kernel prints it (RFC 5952): fd47:172:18:0::4 is fd47:172:18::4. */
const canonical = (ip: string) => formatIP(parseIP(ip)!);

function nodeAddress(idx: number, subnets: number): { ip: string; prefixLen: number; gw: string; segment: number; ip6: string; gw6: string } {
  if (subnets === 2) {
    const segment = idx % 2;
    return { ip: `172.18.${segment}.${idx + 2}`, prefixLen: 24, gw: `172.18.${segment}.1`, segment, ip6: canonical(`${UNDERLAY6}:${segment}::${(idx + 2).toString(16)}`), gw6: canonical(`${UNDERLAY6}:${segment}::1`) };
  }
  return { ip: `172.18.${Math.floor((idx + 2) / 256)}.${(idx + 2) % 256}`, prefixLen: 16, gw: UNDERLAY_GW, segment: 0, ip6: `${UNDERLAY6}::${(idx + 2).toString(16)}`, gw6: `${UNDERLAY6}::1` };
}

function netnsMounted(): boolean {
  try {
    return readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4] === NETNS_DIR);
  } catch {
    return false;
  }
}

export function runtimeFor(n: LabNode): NodeRuntime {
  return { nodeNetns: netnsPath(n.netns), confDir: join(n.root, "etc/cni/net.d"), binDir: join(n.root, "opt/cni/bin"), cacheDir: join(n.root, "var/lib/cni/results"), ...(n.hostPaths ? { hostRoot: n.root } : {}) };
}

function must(argv: string[], input?: string, netns?: string): void {
  const r = runSync(argv, { ...(input !== undefined ? { input } : {}), ...(netns ? { netns } : {}) });
  if (r.status !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr.trim() || r.stdout.trim()}`);
}

/** IPv6 duplicate address detection off (0) for the links made from now on in a namespace, or back on (1, the kernel's default). */
function linkDad(netns: string, on: boolean): void {
  ensureSysctl("net.ipv6.conf.default.accept_dad", on ? "1" : "0", netns);
}

/** Creates node namespaces, their underlay veths and addresses: one netlink batch per side. */
function createNodes(s: LabState, specs: { name: string; role: LabNode["role"]; idx: number }[]): LabNode[] {
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
  recordHostState();
  mkdirSync(labDir(o.name), { recursive: true });
  const s: LabState = {
    name: o.name, podCidr: o.podCidr, backend: o.backend, underlayNs: `gz-${o.name}-underlay`, underlayCidr: UNDERLAY_CIDR, ...(o.underlaySubnets === 2 ? { underlaySubnets: 2 } : {}), ...(o.ipv6 ? { podCidr6: LAB_POD_CIDR6 } : {}), ...(o.noObserve ? { noObserve: true as const } : {}),
    registryDir: join(labDir(o.name), "registry"), store: { kind: manifest ? "kube" : o.store ?? "file", ...(o.etcdEndpoints ? { endpoints: o.etcdEndpoints } : {}), ...(o.etcdTls ? { tls: o.etcdTls } : {}) }, cniInstalled: false, nodes: [], pods: [], createdAt: new Date().toISOString(),
  };
  saveLab(s);
  try {
    const t0 = performance.now();
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
    s.nodes = createNodes(s, nodeNames(o.name, o.nodes).map((n, idx) => ({ ...n, idx })));
    if (s.store.kind === "etcd" && !s.store.endpoints) await startEtcd(s, o.progress);
    if (manifest) {
      s.manifest = manifest.run;
      saveLab(s);
      writeConfigMaps(s, manifest.m);
      await startControlPlane(s, manifest.m.objects);
      for (const n of s.nodes) await registerKubeNode(s, n);
      o.progress(`control plane: the Kubernetes API on https://172.18.0.1:6443, ${s.nodes.length} Node(s) registered with a podCIDR each`);
    } else initRegistry(s, o.podCidr, o.backend);
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

/** The kubelet registers its Node; the controller manager gives it the node's /24 of the cluster CIDR. */
async function registerKubeNode(s: LabState, n: LabNode): Promise<void> {
  const net = resolveNetwork({ Network: s.podCidr });
  const step = 1n << BigInt(32 - net.subnetLen);
  const podCIDR = formatPrefix({ ip: { family: 4, value: net.network.ip.value + BigInt(n.idx) * step }, bits: net.subnetLen });
  n.hostPaths = true;
  await registerNode(s.name, n.name, n.ip, podCIDR);
}

/** Puts the gauze executable into each node's CNI bin dir (a hard link: no copy of 100 MB per node). */
function installBinary(n: LabNode): void {
  const dst = join(n.root, "opt/cni/bin/gauze");
  if (existsSync(dst)) return;
  const src = gauzeExecutable();
  try {
    linkSync(src, dst);
  } catch {
    try { symlinkSync(src, dst); } catch { copyFileSync(src, dst); }
  }
}

// Resync every 5 minutes: registry events already apply at once; a long period keeps a fault
// that `gauze lab break` injects in place long enough for doctor to find it.
export function storeFlags(s: LabState): StoreFlags {
  const t = s.store.tls ?? {};
  return {
    store: s.store.kind, storeDir: s.registryDir, ...(s.store.endpoints ? { etcdEndpoints: s.store.endpoints } : {}),
    ...(t.cafile ? { etcdCafile: t.cafile } : {}), ...(t.certfile ? { etcdCertfile: t.certfile } : {}), ...(t.keyfile ? { etcdKeyfile: t.keyfile } : {}),
    ...(t.username ? { etcdUsername: t.username } : {}), ...(t.passwordFile ? { etcdPasswordFile: t.passwordFile } : {}),
  };
}

const ETCD_CLIENT = `http://${UNDERLAY_GW}:2379`;

/** The lab's own etcd: in the underlay namespace, on 172.18.0.1:2379, where every node reaches it. */
async function startEtcd(s: LabState, progress: Progress): Promise<void> {
  const dir = join(labDir(s.name), "etcd");
  mkdirSync(dir, { recursive: true });
  const argv = ["etcd", "--name", `gz-${s.name}`, "--data-dir", join(dir, "data"), "--listen-client-urls", `${ETCD_CLIENT},http://127.0.0.1:2379`,
    "--advertise-client-urls", ETCD_CLIENT, "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
    "--initial-cluster", `gz-${s.name}=http://127.0.0.1:2380`, "--log-level", "warn"];
  s.store.etcdPid = spawnInNetns(netnsPath(s.underlayNs), argv, join(dir, "etcd.log"));
  s.store.etcdDir = dir;
  s.store.endpoints = ETCD_CLIENT;
  saveLab(s);
  progress(`etcd started in ${s.underlayNs} on ${ETCD_CLIENT} (pid ${s.store.etcdPid})`);
}

export async function etcdStop(lab: string): Promise<void> {
  await withLab(lab, async (s) => {
    await stopProcess(s.store.etcdPid, 2000, "SIGTERM", s.store.etcdDir);
  });
}

export async function etcdStart(lab: string): Promise<void> {
  await withLab(lab, async (s) => {
    if (s.store.kind !== "etcd" || !s.store.etcdDir) throw new Error(`lab ${lab} does not run its own etcd`);
    await startEtcd(s, () => undefined);
  });
}

/** Registry operations run where the registry is reachable: the file one here, etcd from the underlay. */
function storeHelper(s: LabState, args: string[]): void {
  if (s.store.kind === "file") return;
  const endpoints = s.store.endpoints === ETCD_CLIENT ? "http://127.0.0.1:2379" : s.store.endpoints!;
  must([gauzeExecutable(), "store", ...args, ...storeArgs({ ...storeFlags(s), etcdEndpoints: endpoints })], undefined, netnsPath(s.underlayNs));
}

function initRegistry(s: LabState, podCidr: string, backend: string): void {
  const block = backendBlock(backend);
  const v6 = s.podCidr6 ? { EnableIPv6: true, IPv6Network: s.podCidr6 } : {};
  if (s.store.kind === "file") FileRegistry.init(s.registryDir, { Network: podCidr, SubnetLen: 24, ...v6, Backend: block });
  else storeHelper(s, ["init", "--network", podCidr, "--backend", block.Type, ...(block.DirectRouting ? ["--direct-routing"] : []), ...(s.podCidr6 ? ["--ipv6-network", s.podCidr6] : [])]);
}

export function startAgent(s: LabState, n: LabNode): void {
  const argv = [gauzeExecutable(), "agent", "--node", n.name, "--iface", "eth0", ...storeArgs(storeFlags(s)),
    "--root", n.root, "--health-addr", `127.0.0.1:${AGENT_PORT}`, "--resync", "5m", ...(s.noObserve ? ["--no-observe"] : [])];
  n.agentPid = spawnInNetns(netnsPath(n.netns), argv, join(n.root, "var/log/gauze-agent.log"));
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
      const why = waiting.map((n) => `${n.name}: ${agentStatus(n)?.reason || "agent not reporting"} (log: ${join(n.root, "var/log/gauze-agent.log")})`);
      throw new Error(`nodes not Ready after ${timeoutMs / 1000} s: ${why.join("; ")}`);
    }
    await new Promise((r) => setTimeout(r, 5));
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
  const subnets = s.nodes.map((n) => `${n.name} ${agentStatus(n)?.subnet}`).join(", ");
  progress(`gauze installed: agents ready, subnets leased (${subnets}) in ${(performance.now() - t0).toFixed(0)} ms`);
}

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
  const running = s.manifest ? !!n.pod && containersUp(s.name).has(n.pod.containers[0] ?? "") : isOurProcess(n.agentPid);
  return {
    name: n.name, role: n.role, ready, ...(reason ? { reason } : {}), ip: n.ip,
    ...(a?.subnet ? { subnet: a.subnet } : {}), ...(a?.vtepMac ? { vtepMac: a.vtepMac } : {}),
    ...(n.ip6 ? { ip6: n.ip6 } : {}), ...(a?.ipv6Subnet ? { subnet6: a.ipv6Subnet } : {}),
    ...(s.cniInstalled ? { agent: { pid: n.agentPid, running, ready: !!a?.ready && running, reason: a?.reason ?? "", peers: a?.peers ?? 0 } } : {}),
    ...(n.pod ? { pod: { name: n.pod.name, image: n.pod.image, running, ...podReady(s, n) } } : {}),
  };
}

// ---- pods ----

function podRef(p: LabPod) {
  return { name: p.name, namespace: "default", uid: p.uid, containerId: p.containerId, netns: p.netns };
}

/** One sandbox set-up attempt, as kubelet makes them: Running, or ContainerCreating with the reason. */
function trySetUp(s: LabState, p: LabPod): void {
  const n = findNode(s, p.node);
  const rt = runtimeFor(n);
  try {
    loadNetwork(rt);
  } catch (e) {
    p.phase = "Pending";
    p.reason = `node ${n.name} is NotReady: ${(e as Error).message}`;
    return;
  }
  try {
    const { result } = addPod(rt, podRef(p));
    const ips = (result.ips as { address: string }[] | undefined) ?? [];
    p.ip = ips.find((i) => !i.address.includes(":"))?.address.split("/")[0];
    const ip6 = ips.find((i) => i.address.includes(":"))?.address.split("/")[0];
    if (ip6) p.ip6 = ip6;
    p.phase = "Running";
    delete p.reason;
    if (p.image === "nginx" && !p.serverPid) {
      p.serverPid = spawnInNetns(netnsPath(p.netns), [gauzeExecutable(), "lab", "serve-http", "--port", "80", "--pod", p.name], join(labDir(s.name), "pods", `${p.name}.log`));
    }
  } catch (e) {
    if (!(e instanceof RuntimeError)) throw e;
    p.phase = "ContainerCreating";
    p.reason = `Failed to create pod sandbox: ${e.message}`;
  }
}

const POD_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export async function podRun(lab: string, name: string, node: string, image: LabPod["image"]): Promise<LabPod> {
  if (!POD_NAME.test(name)) throw new Error(`pod name ${JSON.stringify(name)}: use lowercase letters, digits and '-' (up to 32)`);
  return withLab(lab, (s) => {
    if (s.pods.some((p) => p.name === name)) throw new Error(`pod ${name} exists already in lab ${lab}: gauze lab pod rm ${name} first`);
    const n = findNode(s, node);
    const p: LabPod = {
      name, node: n.name, image, netns: `gz-${lab}-pod-${name}`, containerId: randomBytes(32).toString("hex"), uid: randomUUID(), phase: "Pending",
    };
    addNetns(p.netns);
    s.pods.push(p);
    trySetUp(s, p);
    return p;
  });
}

export async function waitServing(p: LabPod, timeoutMs = 3000): Promise<void> {
  // The server binds :80 within a few ms of starting; probe from inside the pod.
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const r = runSync([gauzeExecutable(), "lab", "http-get", "http://127.0.0.1:80/", "--timeout", "300"], { netns: netnsPath(p.netns) });
    if (r.status === 0) return;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`pod ${p.name}: HTTP server did not come up on :80`);
}

async function tearDownPod(s: LabState, p: LabPod): Promise<void> {
  await stopProcess(p.serverPid, 500);
  const n = s.nodes.find((x) => x.name === p.node);
  if (n) {
    try {
      delPod(runtimeFor(n), podRef(p));
    } catch {
      // the namespace goes next; GC would catch leftovers in a real cluster
    }
  }
  delNetns(p.netns);
}

export async function podRm(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    const p = findPod(s, name);
    await tearDownPod(s, p);
    s.pods = s.pods.filter((x) => x !== p);
  });
}

/** Retries sandboxes that are not Running (kubelet's loop); returns the state for display. */
export async function refresh(lab: string): Promise<LabState> {
  return withLab(lab, (s) => {
    for (const p of s.pods) if (p.phase !== "Running") trySetUp(s, p);
    return s;
  });
}

// ---- nodes joining and leaving ----

export async function nodeAdd(lab: string, progress: Progress, name?: string): Promise<LabNode> {
  return withLab(lab, async (s) => {
    const idx = Math.max(-1, ...s.nodes.map((n) => n.idx)) + 1;
    const nodeName = name ?? `${lab}-worker${s.nodes.filter((n) => n.role === "worker").length + 1 === 1 ? "" : s.nodes.filter((n) => n.role === "worker").length + 1}`;
    const bad = validateNodeName(nodeName);
    if (bad) throw new Error(bad);
    if (s.nodes.some((n) => n.name === nodeName)) throw new Error(`node ${nodeName} exists already`);
    const [n] = createNodes(s, [{ name: nodeName, role: "worker", idx }]);
    s.nodes.push(n!);
    if (s.manifest) await registerKubeNode(s, n!);
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
    progress(`node ${n!.name} joined (${n!.ip}${agentStatus(n!)?.subnet ? `, subnet ${agentStatus(n!)!.subnet}` : ""})`);
    return n!;
  });
}

/** Removes a node as `kubectl delete node` would: its pods, its agent, its lease, its namespace. */
export async function nodeRm(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    const n = findNode(s, name);
    for (const p of s.pods.filter((x) => x.node === n.name)) await tearDownPod(s, p);
    s.pods = s.pods.filter((x) => x.node !== n.name);
    await stopProcess(n.agentPid);
    if (s.manifest) {
      stopDaemonPod(s, n);
      await deleteNode(s.name, n.name);
    } else if (s.store.kind === "file") {
      const reg = new FileRegistry(s.registryDir);
      for (const l of await reg.listLeases()) if (l.node === n.name) await reg.releaseLease(l.subnet);
      reg.close();
    } else {
      storeHelper(s, ["release", "--node", n.name]);
    }
    delNetns(n.netns);
    rmSync(n.root, { recursive: true, force: true });
    s.nodes = s.nodes.filter((x) => x !== n);
  });
}

export async function agentStop(lab: string, name: string, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  await withLab(lab, async (s) => {
    const n = findNode(s, name);
    if (s.manifest) return stopDaemonPod(s, n);
    await stopProcess(n.agentPid, 1000, signal);
    n.agentPid = undefined;
  });
}

export async function agentStart(lab: string, name: string): Promise<void> {
  await withLab(lab, async (s) => {
    const n = findNode(s, name);
    if (s.manifest) {
      if (!n.pod) n.pod = runDaemonPod(s, n, s.manifest.image);
      saveLab(s);
      return waitPodReady(s, [n]);
    }
    if (isOurProcess(n.agentPid)) return; // a zombie or a recycled PID is not our agent
    startAgent(s, n);
    saveLab(s);
    await waitReady([n]);
  });
}

// ---- install and uninstall, as kubectl apply and an uninstall DaemonSet would ----

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
      return;
    }
    for (const n of nodes) {
      await stopProcess(n.agentPid, 1000);
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
  });
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
    if (!s.cniInstalled) return;
    for (const n of s.nodes) {
      const t0 = performance.now();
      await stopProcess(n.agentPid, 1000);
      startAgent(s, n);
      saveLab(s);
      await waitReady([n]);
      progress(`${n.name}: agent restarted on ${backend} in ${(performance.now() - t0).toFixed(0)} ms`);
    }
  });
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

// ---- down ----

export async function labDown(name: string, progress: Progress): Promise<void> {
  const lock = lockLab(name);
  let s: LabState;
  try {
    s = loadLab(name);
    const t0 = performance.now();
    await Promise.all([...s.pods.map((p) => stopProcess(p.serverPid, 300)), ...s.nodes.map((n) => stopProcess(n.agentPid, 1000))]);
    await stopProcess(s.store?.etcdPid, 2000, "SIGTERM", s.store?.etcdDir);
    if (s.manifest) {
      removePodmanState(name);
      await stopControlPlane(s);
    }
    // The agents' drop watchers (tracefs instances): an agent killed outright leaves its own.
    for (const n of s.nodes) DropWatch.removeStale(`gauze-${n.name}-`);
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
  cleanHost();
}

interface HostState {
  createdVarLibGauze: boolean;
  createdNetnsMount: boolean;
}

const HOST_STATE = join(LAB_HOME, ".host.json");

/** The first lab on a host notes what the host lacked, so that the last `lab down` restores it. */
function recordHostState(): void {
  if (existsSync(LAB_HOME)) return;
  const h: HostState = { createdVarLibGauze: !existsSync("/var/lib/gauze"), createdNetnsMount: !netnsMounted() };
  mkdirSync(LAB_HOME, { recursive: true });
  writeFileSync(HOST_STATE, JSON.stringify(h) + "\n");
}

/** Undoes what labs added to the host itself, once the last lab is gone. */
function cleanHost(): void {
  if (listLabs().length > 0) return;
  let host: HostState;
  try {
    host = JSON.parse(readFileSync(HOST_STATE, "utf8")) as HostState;
  } catch {
    return; // made by an older gauze or by hand: leave it
  }
  rmSync(HOST_STATE, { force: true });
  try { rmdirSync(LAB_HOME); } catch { /* not empty: someone else's files */ }
  if (host.createdVarLibGauze) {
    try { rmdirSync("/var/lib/gauze"); } catch { /* not empty */ }
  }
  if (host.createdNetnsMount) {
    let left: string[] = [];
    try { left = readdirSync(NETNS_DIR); } catch { /* gone */ }
    if (left.length === 0) {
      unmountNetnsDir();
      try { rmdirSync(NETNS_DIR); } catch { /* keep */ }
    }
  }
}

