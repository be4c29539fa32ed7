// A lab's state on disk: /var/lib/gauze/lab/<name>/lab.json (nodes, pods, processes), the node
// trees under nodes/<node>/, the embedded subnet registry under registry/. Changes happen under
// a flock on the lab's lock file, so lab commands may run side by side. The types every lab
// module shares live here, so that no two lab modules need each other for a type.
import { BACKEND_CHOICES, type BackendChoice, backendBlock } from "../store/registry.ts";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { lockFile, writeAtomic } from "../kernel/files.ts";
import type { EtcdAuthFlags } from "../store/flags.ts";

export const LAB_HOME = "/var/lib/gauze/lab";

export interface LabNode {
  name: string;
  role: "control-plane" | "worker";
  netns: string;
  ip: string;
  /** Dual-stack labs: the node's IPv6 underlay address. */
  ip6?: string;
  /** Position on the underlay (node IP = 172.18.0.(idx + 2)). */
  idx: number;
  root: string;
  agentPid?: number;
  /** This node's agent runs without observing (`lab node start-agent --observe off`), whatever the lab's choice. */
  noObserve?: boolean;
  /** Manifest mode: host paths (a config's subnet file, IPAM dir) are read under the node's tree. */
  hostPaths?: boolean;
  /** Manifest mode: the DaemonSet's pod on this node, run by podman as a kubelet would. */
  pod?: DaemonPod;
}

/** A DaemonSet pod on a lab node: its podman containers (init containers are gone once they succeeded). */
export interface DaemonPod {
  name: string;
  image: string;
  containers: string[];
  startedAt: string;
}

/** Manifest mode: the manifest the lab runs, and its control plane. */
export interface ManifestRun {
  /** The manifest as given (absolute path) and a copy as it was when the lab applied it. */
  file: string;
  daemonSet: string;
  namespace: string;
  /** The agent's image now (a rollout changes it). */
  image: string;
}

export type PodPhase = "Pending" | "ContainerCreating" | "Running";

/** A port a pod's container declares (spec.containers[0].ports): what NetworkPolicy's named ports resolve against. */
export interface PodPort { name?: string; containerPort: number; protocol: "TCP" | "UDP" | "SCTP" }

export type LabImage = "nginx" | "netshoot" | "agnhost";
export const LAB_IMAGES: readonly LabImage[] = ["nginx", "netshoot", "agnhost"];

export interface LabPod {
  name: string;
  /** The pod's namespace; absent: default (labs of older gauze had only that one). */
  namespace?: string;
  node: string;
  image: LabImage;
  /** The labels the pod was made with (the API holds the live ones: `lab label` changes them there). */
  labels?: Record<string, string>;
  ports?: PodPort[];
  netns: string;
  containerId: string;
  uid: string;
  phase: PodPhase;
  reason?: string;
  ip?: string;
  /** Dual-stack labs: the pod's IPv6 address. */
  ip6?: string;
  serverPid?: number;
}

export interface LabState {
  name: string;
  podCidr: string;
  backend: string;
  underlayNs: string;
  underlayCidr: string;
  /** 2: nodes on two routed underlay subnets (for DirectRouting); absent: one. */
  underlaySubnets?: 2;
  /** Agents run with --no-observe (benchmarks compare with and without flow recording). */
  noObserve?: true;
  /** The agents' --policy-established (absent: keep). */
  policyEstablished?: "recheck";
  /** The agents' --observer (absent: the agent's default, auto). */
  observer?: "auto" | "ebpf" | "ring";
  /** The agents' --datapath (absent: the network config's, classic). */
  datapath?: "classic" | "ebpf";
  /** Dual-stack (`lab up --ipv6`): the IPv6 pod network; nodes also get IPv6 underlay addresses. */
  podCidr6?: string;
  registryDir: string;
  /** Where leases live: the embedded file registry, or etcd (the lab's own in the underlay namespace, or given). */
  store: { kind: "file" | "etcd" | "kube"; endpoints?: string; etcdPid?: number; etcdDir?: string; etcdAuth?: EtcdAuthFlags };
  cniInstalled: boolean;
  nodes: LabNode[];
  pods: LabPod[];
  createdAt: string;
  /** Manifest mode (`lab up --manifest`): what runs the nodes' agents. */
  manifest?: ManifestRun;
  /** The lab's API server process, and its URL on this host's loopback (absent in labs of older gauze). */
  kube?: { apiPid?: number; local?: string };
  /** Faults injected by `gauze lab break`, undone by `gauze lab fix`. */
  faults?: FaultRecord[];
}

/** The failures `gauze lab break` injects (faults.ts says what each does and how it is undone). */
export type Fault = "no-br-netfilter" | "no-cni-config" | "missing-plugin" | "ip-forward-off" | "mtu-mismatch" | "stale-fdb" | "agent-down" | "forward-drop" | "vxlan-port-blocked";

export interface FaultRecord {
  fault: Fault;
  node: string;
  detail?: Record<string, string>;
}

/** Long lab steps report as they go (one line each, to stderr in the CLI). */
export type Progress = (line: string) => void;

/** The backends a lab runs (the names `gauze manifests` takes too): vxlan-direct is vxlan with DirectRouting. */
export type LabBackend = BackendChoice;
export const LAB_BACKENDS: readonly LabBackend[] = BACKEND_CHOICES;
export { backendBlock };

/** The lab's underlay: kind's network, with the underlay namespace's bridge as its gateway. */
export const UNDERLAY_CIDR = "172.18.0.0/16";
export const UNDERLAY_GW = "172.18.0.1";
/** Where every lab agent's /healthz, /readyz and /metrics listen, inside its node's namespace. */
export const AGENT_PORT = 9317;
/** macvlan pods live on the underlay itself: their addresses come from its upper half, which no node uses. */
export const MACVLAN_POD_CIDR = "172.18.128.0/17";
/** Dual-stack labs: the IPv6 pod network (one /64 per node, same index as its IPv4 /24) and the IPv6 underlay (ULA, inside the lab's namespaces only). */
export const LAB_POD_CIDR6 = "fd47:10:244::/56";
export const UNDERLAY6 = "fd47:172:18";

const NAME = /^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$/;

export function validateLabName(name: string): string | undefined {
  return NAME.test(name) ? undefined : `lab name ${JSON.stringify(name)}: use 1-20 lowercase letters, digits and '-'`;
}

const NODE_NAME = /^[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?$/;

/** A node name becomes a namespace name and a directory: letters, digits and '-' only. */
export function validateNodeName(name: string): string | undefined {
  return NODE_NAME.test(name) ? undefined : `node name ${JSON.stringify(name)}: use 1-42 lowercase letters, digits and '-' (it names a namespace and a directory)`;
}

export function labDir(name: string): string {
  return join(LAB_HOME, name);
}

export function labExists(name: string): boolean {
  return existsSync(join(labDir(name), "lab.json"));
}

/**
 * The lab a command means: the one named, else $GAUZE_LAB, else the only lab on the host. With
 * none, or several and no name, the error says what exists.
 */
export function pickLab(name?: string): string {
  if (name) return name;
  const env = process.env.GAUZE_LAB;
  if (env) return env;
  const labs = listLabs();
  if (labs.length === 1) return labs[0]!;
  if (labs.length === 0) throw new Error("no lab on this host: gauze lab up [--name <name>] makes one");
  throw new Error(`${labs.length} labs on this host (${labs.join(", ")}): say which with --name <lab> or GAUZE_LAB=<lab>`);
}

export function loadLab(name: string): LabState {
  const bad = validateLabName(name);
  if (bad) throw new Error(bad);
  const path = join(labDir(name), "lab.json");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    const labs = listLabs();
    throw new Error(`no lab named ${JSON.stringify(name)} (${labs.length ? `labs here: ${labs.join(", ")}` : "no labs here"}; gauze lab up --name ${name} creates it)`);
  }
  return JSON.parse(text) as LabState;
}

export function saveLab(s: LabState): void {
  writeAtomic(join(labDir(s.name), "lab.json"), JSON.stringify(s, null, 2) + "\n");
}

export function listLabs(): string[] {
  try {
    return readdirSync(LAB_HOME).filter((n) => existsSync(join(LAB_HOME, n, "lab.json"))).sort();
  } catch {
    return [];
  }
}

/** Runs `fn` on the lab's state under its lock and saves what it returns. */
export async function withLab<T>(name: string, fn: (s: LabState) => Promise<T> | T): Promise<T> {
  loadLab(name); // a clear error, and no directory made, for a lab that does not exist
  const lock = lockFile(join(labDir(name), "lock"));
  try {
    const s = loadLab(name);
    const out = await fn(s);
    saveLab(s);
    return out;
  } finally {
    lock.release();
  }
}

export function lockLab(name: string) {
  loadLab(name);
  return lockFile(join(labDir(name), "lock"));
}

export function nodeNames(lab: string, count: number): { name: string; role: LabNode["role"] }[] {
  const out: { name: string; role: LabNode["role"] }[] = [{ name: `${lab}-control-plane`, role: "control-plane" }];
  for (let i = 1; i < count; i++) out.push({ name: `${lab}-worker${i === 1 ? "" : i}`, role: "worker" });
  return out;
}

export function findNode(s: LabState, name: string): LabNode {
  const n = s.nodes.find((x) => x.name === name) ?? s.nodes.find((x) => x.name === `${s.name}-${name}`);
  if (!n) throw new Error(`lab ${s.name} has no node ${JSON.stringify(name)} (nodes: ${s.nodes.map((x) => x.name).join(", ")})`);
  return n;
}

export const podNamespace = (p: LabPod): string => p.namespace ?? "default";

/** How a lab command names a pod: "web" for default/web, "x/web" elsewhere. */
/** What a pod's server is told it serves (its --pod): the name that stopping it finds it by. */
export const podServerName = (p: LabPod): string => (p.image === "agnhost" ? podLabel(p) : p.name);
export const podLabel = (p: LabPod): string => (podNamespace(p) === "default" ? p.name : `${podNamespace(p)}/${p.name}`);

/** `[namespace/]name` (a bare name is in default) as its two parts. */
export function splitPodRef(ref: string): { namespace: string; name: string } {
  const i = ref.indexOf("/");
  return i < 0 ? { namespace: "default", name: ref } : { namespace: ref.slice(0, i), name: ref.slice(i + 1) };
}

/** A lab pod by `[namespace/]name`, or undefined. */
export function podByRef(s: LabState, ref: string): LabPod | undefined {
  const { namespace, name } = splitPodRef(ref);
  return s.pods.find((x) => x.name === name && podNamespace(x) === namespace);
}

/** A lab pod by `[namespace/]name` (a bare name is in default: "default/web" is "web"). */
export function findPod(s: LabState, ref: string): LabPod {
  const p = podByRef(s, ref);
  if (!p) throw new Error(`lab ${s.name} has no pod ${JSON.stringify(ref)} (pods: ${s.pods.map(podLabel).join(", ") || "none"}; gauze lab pod run <name> --node <node> [--namespace <ns>])`);
  return p;
}

/**
 * The network namespace of a pod: gz-<lab>-pod-<name> in default (as always), gz-<lab>-pod-<ns>.<name>
 * elsewhere (neither part has a dot, so no two pods share one), and past 60 characters the
 * namespace's start and a hash of both, with two dots so that it never equals another's.
 */
export function podNetnsName(lab: string, namespace: string, name: string): string {
  if (namespace === "default") return `gz-${lab}-pod-${name}`;
  const long = `gz-${lab}-pod-${namespace}.${name}`;
  if (long.length <= 60) return long;
  return `gz-${lab}-pod-${namespace.slice(0, 12)}..${createHash("sha256").update(`${namespace}/${name}`).digest("hex").slice(0, 16)}`;
}
