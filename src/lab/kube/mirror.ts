// The lab as its API shows it: the lab plays each node's kubelet and the controller manager, so
// its nodes and pods are mirrored into the API as they change. A Node per node (labels with its
// role, its address, Ready from the runtime's view of net.d, and in labs that start agents the
// podCIDR its agent's lease got, empty before the agent runs); a Pod per lab pod (namespace,
// name, the sandbox's uid, labels, spec.nodeName, the container's ports with names and
// protocols, status.phase, and podIP/podIPs once Running). The API holds the live labels: `lab
// label` and kubectl change them there, and the lab never writes them back. Labs of older gauze
// have no API: every call here does nothing for them.
import { release } from "node:os";
import { GAUZE_VERSION } from "../../version.ts";
import { agentStatus } from "../agents.ts";
import { nodeView } from "../view.ts";
import { type LabNode, type LabPod, type LabState, podNamespace } from "../state.ts";
import { ApiError, getObject, kubeCall, objectPath, rt } from "./client.ts";
import { registerNode } from "./cluster.ts";
import { NAMESPACE_NAME_LABEL, timestamp } from "./apiserver.ts";

export const hasApi = (s: LabState): boolean => !!s.kube?.apiPid;

/** What `kubectl get nodes -o wide` shows of a lab node. */
export function nodeDetails(s: LabState, n: LabNode, ready: { ok: boolean; reason?: string }) {
  const now = timestamp();
  return {
    labels: { "kubernetes.io/arch": process.arch === "arm64" ? "arm64" : "amd64", ...(n.role === "control-plane" ? { "node-role.kubernetes.io/control-plane": "" } : {}) },
    nodeInfo: { kubeletVersion: `v${GAUZE_VERSION}-gauze-lab`, osImage: "gauze lab node (a network namespace)", kernelVersion: release(), containerRuntimeVersion: `gauze-lab://${GAUZE_VERSION}`, operatingSystem: "linux", architecture: process.arch === "arm64" ? "arm64" : "amd64" },
    conditions: [{ type: "Ready", status: ready.ok ? "True" : "False", reason: ready.ok ? "KubeletReady" : "KubeletNotReady", message: ready.ok ? "kubelet is posting ready status" : ready.reason ?? "", lastHeartbeatTime: now, lastTransitionTime: now }],
  };
}

/** Registers (or updates) a lab node's Node; in labs that start agents its podCIDR is its agent's lease. */
export async function mirrorNode(s: LabState, n: LabNode): Promise<void> {
  if (!hasApi(s)) return;
  const v = nodeView(s, n);
  const a = agentStatus(n);
  // Manifest mode: the podCIDR is the controller manager's (registerKubeNode), "" leaves it.
  const lease = !s.manifest && !!v.agent?.running;
  await registerNode(s.name, n.name, n.ip, lease ? a?.subnet ?? "" : "", { ...(lease && a?.ipv6Subnet ? { podCIDR6: a.ipv6Subnet } : {}), ...nodeDetails(s, n, { ok: v.ready, ...(v.reason ? { reason: v.reason } : {}) }) });
}

/** The namespace, made as `kubectl create namespace` makes it when it does not exist; true if it was made. */
export async function ensureNamespace(s: LabState, ns: string): Promise<boolean> {
  if (!hasApi(s) || await getObject(s.name, rt("namespaces"), undefined, ns)) return false;
  try {
    await kubeCall(s.name, "POST", objectPath(rt("namespaces")), { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { [NAMESPACE_NAME_LABEL]: ns } } });
  } catch (e) {
    if (!(e instanceof ApiError && e.code === 409)) throw e;
  }
  return true;
}

const IMAGE = { nginx: "gauze-lab/nginx", netshoot: "gauze-lab/netshoot", agnhost: "gauze-lab/agnhost" } as const;

function podStatus(s: LabState, p: LabPod): Record<string, unknown> {
  const node = s.nodes.find((n) => n.name === p.node);
  const running = p.phase === "Running";
  const ips = running ? [...(p.ip ? [p.ip] : []), ...(p.ip6 ? [p.ip6] : [])] : [];
  return {
    phase: running ? "Running" : "Pending",
    ...(node ? { hostIP: node.ip, hostIPs: [{ ip: node.ip }] } : {}),
    ...(ips.length ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
    conditions: [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: running ? "True" : "False" }],
    ...(p.phase === "Pending" ? {} : {
      containerStatuses: [{ name: p.image, image: IMAGE[p.image], ready: running, started: running, restartCount: 0, state: running ? { running: { startedAt: timestamp() } } : { waiting: { reason: "ContainerCreating", ...(p.reason ? { message: p.reason } : {}) } } }],
    }),
    ...(p.reason && !running ? { message: p.reason } : {}),
  };
}

/** Creates the Pod of a lab pod that was just made (its namespace too, when new). */
export async function mirrorPodCreate(s: LabState, p: LabPod): Promise<void> {
  if (!hasApi(s)) return;
  const ns = podNamespace(p);
  await ensureNamespace(s, ns);
  await kubeCall(s.name, "POST", objectPath(rt("pods"), ns), {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: p.name, namespace: ns, uid: p.uid, labels: p.labels ?? {}, annotations: { "gauze.dev/lab-image": p.image } },
    spec: { nodeName: p.node, restartPolicy: "Always", containers: [{ name: p.image, image: IMAGE[p.image], ports: p.ports ?? [] }] },
  });
  await mirrorPodStatus(s, p);
}

/** The pod's status now (phase, addresses, why it waits), replacing the last one. */
export async function mirrorPodStatus(s: LabState, p: LabPod): Promise<void> {
  if (!hasApi(s)) return;
  await kubeCall(s.name, "PATCH", objectPath(rt("pods"), podNamespace(p), p.name, "status"), [{ op: "replace", path: "/status", value: podStatus(s, p) }], "application/json-patch+json");
}

export async function mirrorPodDelete(s: LabState, p: LabPod): Promise<void> {
  if (!hasApi(s)) return;
  try {
    await kubeCall(s.name, "DELETE", objectPath(rt("pods"), podNamespace(p), p.name));
  } catch (e) {
    if (!(e instanceof ApiError && e.code === 404)) throw e;
  }
}

/** Which lab pods the API still has (a pod deleted through the API, by kubectl, is gone from it). */
export async function podsInApi(s: LabState): Promise<Set<string> | undefined> {
  if (!hasApi(s)) return undefined;
  const l = await kubeCall(s.name, "GET", objectPath(rt("pods"))) as { items: { metadata: { namespace: string; name: string; uid: string } }[] };
  return new Set(l.items.map((x) => x.metadata.uid));
}
