// The Kubernetes manifest that installs gauze (`gauze manifests`; deploy/kube-gauze.yml is its
// default render), and the one that removes it from every node (`--uninstall`). One function
// builds the objects, so that the lab, which runs these pods as a kubelet would, and a real
// cluster read the same thing.
//
// Choices, and why:
// - its own namespace, labelled for the `privileged` Pod Security level: hostNetwork, hostPath
//   and NET_ADMIN are refused under `baseline`;
// - not privileged: NET_ADMIN (links, routes, neighbours, FDB, iptables; tc programs), NET_RAW
//   (iptables needs a raw socket), BPF and PERFMON (the eBPF observer: loading its programs and
//   maps, and the kfree_skb tracing program), every other capability dropped; the install-cni
//   init container drops all;
// - probes on 127.0.0.1 with `host:` set: the agent's health server listens on loopback only;
// - RBAC exactly what the agent does: nodes get/list/watch, nodes/status patch (the kube store),
//   pods, namespaces and networkpolicies list/watch (NetworkPolicy);
// - who may observe (observe, doctor, ui, trace --kubeconfig) is RBAC's to say: the agent opens
//   no TCP port, a client reaches it by pods/exec. The install render ships the ClusterRole
//   gauze-observer for users to be bound to (OBSERVER_RULES), aggregated into the built-in admin
//   role (namespace admins of gauze's namespace get it by their binding);
// - the agent never removes the conflist, the plugin or the dataplane when it stops, so pods keep
//   starting and running through a rolling update; only the uninstall manifest removes them.
import type { EtcdFlags } from "../store/flags.ts";
import { parseAllDocuments, stringify } from "yaml";
import { GAUZE_VERSION } from "../version.ts";
import { parseCIDR } from "../net/cidr.ts";
import { BACKEND_CHOICES, backendBlock } from "../store/registry.ts";

export const NAMESPACE = "kube-gauze";
export const DAEMONSET = "kube-gauze-ds";
export const UNINSTALL_DAEMONSET = "kube-gauze-uninstall";
export const CONFIGMAP = "kube-gauze-cfg";
export const SERVICE_ACCOUNT = "gauze";
export const OBSERVER_ROLE = "gauze-observer";
/**
 * What `--kubeconfig` clients ask (observe/cluster-source.ts): the DaemonSet, its pods and the
 * nodes, pods in every namespace for their names, and exec into the agent's container. A
 * ClusterRoleBinding grants exec in every namespace; to keep it to gauze's, bind the role twice:
 * a ClusterRoleBinding to a copy without pods/exec, and a RoleBinding in the namespace (docs/observe.md).
 */
export const OBSERVER_RULES = [
  { apiGroups: [""], resources: ["nodes", "pods"], verbs: ["get", "list"] },
  { apiGroups: [""], resources: ["pods/exec"], verbs: ["create", "get"] },
  { apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["get", "list"] },
];
/** Where the agent's container sees the node's CNI bin dir (read-only: doctor's cni.plugins looks there). */
export const AGENT_CNI_BIN = "/host/opt/cni/bin";
/** Where the image keeps the executable. */
export const IMAGE_BINARY = "/usr/local/bin/gauze";
export const HEALTH_PORT = 9317;

export interface ManifestOptions {
  podCidr: string;
  backend: string;
  image: string;
  store: "kube" | "etcd";
  etcdEndpoints?: EtcdFlags["etcdEndpoints"];
  mtu?: number;
  /** net-conf.json's Datapath (absent: classic, the agent's default). */
  datapath?: "classic" | "ebpf";
  /** Dual-stack: net-conf.json's EnableIPv6 with this IPv6Network (kind's dual-stack default is fd00:10:244::/56). */
  ipv6Network?: string;
  /**
   * The opt-in for trace's active probes on a cluster: the agent may enter its pods' network
   * namespaces (CAP_SYS_ADMIN for setns, the host's /run/netns where the runtime pins them).
   * Without it trace follows a pod's own next packet instead.
   */
  traceProbes?: boolean;
  /** The uninstall DaemonSet instead of the agent's. */
  uninstall?: boolean;
}

/** kind's IPv6 podSubnet: what `gauze manifests --ipv6` writes when given no network. */
export const DEFAULT_IPV6_NETWORK = "fd00:10:244::/56";

export const DEFAULT_MANIFEST: ManifestOptions = { podCidr: "10.244.0.0/16", backend: "vxlan", image: `localhost/gauze:${GAUZE_VERSION}`, store: "kube" };

export class ManifestError extends Error {}

/** A Kubernetes object as it is written: plain JSON. */
export type KubeObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [field: string]: unknown };

function validate(o: ManifestOptions): void {
  const c = parseCIDR(o.podCidr);
  if (!c || c.prefix.ip.family !== 4 || c.prefix.bits > 24) throw new ManifestError(`--pod-cidr ${o.podCidr}: give an IPv4 network of /24 or wider, e.g. 10.244.0.0/16 (kind's default podSubnet)`);
  if (!(BACKEND_CHOICES as readonly string[]).includes(o.backend)) throw new ManifestError(`--backend ${o.backend}: use ${BACKEND_CHOICES.join(", ")}`);
  if (o.ipv6Network !== undefined) {
    const v6 = parseCIDR(o.ipv6Network);
    if (!v6 || v6.prefix.ip.family !== 6 || v6.prefix.bits > 64) throw new ManifestError(`--ipv6 ${o.ipv6Network}: give an IPv6 network of /64 or wider, e.g. fd00:10:244::/56 (kind's dual-stack podSubnet)`);
    if (o.store !== "kube") throw new ManifestError("--ipv6 goes into the ConfigMap's net-conf.json (--store kube); with --store etcd, put EnableIPv6 and IPv6Network into etcd's network config (gauze store init --ipv6-network)");
    if (o.backend === "macvlan" || o.backend === "wireguard") throw new ManifestError(`--ipv6 with --backend ${o.backend}: dual-stack runs on vxlan, vxlan-direct and host-gw`);
  }
  if (!/^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[a-f0-9]{64})?$/.test(o.image)) throw new ManifestError(`--image ${o.image}: not an image reference (e.g. localhost/gauze:${GAUZE_VERSION})`);
  if (o.store === "etcd" && !o.etcdEndpoints) throw new ManifestError("--store etcd needs --etcd-endpoints, e.g. https://10.0.0.1:2379");
  if (o.store !== "etcd" && o.store !== "kube") throw new ManifestError(`--store ${String(o.store)}: use kube or etcd`);
  if (o.datapath !== undefined && o.datapath !== "classic" && o.datapath !== "ebpf") throw new ManifestError(`--datapath ${String(o.datapath)}: use classic or ebpf`);
  if (o.mtu !== undefined && !(Number.isInteger(o.mtu) && o.mtu >= 576 && o.mtu <= 65535)) throw new ManifestError(`--mtu ${o.mtu}: give a number from 576 to 65535`);
}

/** flannel's net-conf.json for the ConfigMap: same keys, read by the agent with flannel's rules. */
export function netConf(o: ManifestOptions): Record<string, unknown> {
  return {
    Network: o.podCidr, ...(o.ipv6Network ? { EnableIPv6: true, IPv6Network: o.ipv6Network } : {}), Backend: backendBlock(o.backend), ...(o.datapath === "ebpf" ? { Datapath: "ebpf" } : {}),
  };
}

const labels = { "app.kubernetes.io/name": "gauze", "k8s-app": "gauze" };

function hostPath(name: string, path: string, type: string) {
  return { name, hostPath: { path, type } };
}

function storeArgs(o: ManifestOptions): string[] {
  return o.store === "kube" ? ["--store", "kube", "--net-conf", "/etc/gauze/net-conf.json"] : ["--store", "etcd", "--etcd-endpoints", o.etcdEndpoints!];
}

const NODE_NAME_ENV = [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }];
/** What --trace-probes adds: setns into a pod's network namespace. */
export const TRACE_PROBE_CAP = "SYS_ADMIN";
const AGENT_CAPS = { privileged: false, allowPrivilegeEscalation: false, capabilities: { add: ["NET_ADMIN", "NET_RAW", "BPF", "PERFMON"], drop: ["ALL"] } };

function podSpec(o: ManifestOptions, container: Record<string, unknown>, extraVolumes: { name: string; mountPath: string; hostPath: string; type: string; mountPropagation?: string }[]) {
  const mounts = [
    { name: "cni-conf", mountPath: "/etc/cni/net.d" },
    { name: "run-gauze", mountPath: "/run/gauze" },
    { name: "xtables-lock", mountPath: "/run/xtables.lock" },
    ...(o.store === "kube" ? [{ name: "net-conf", mountPath: "/etc/gauze", readOnly: true }] : []),
    ...extraVolumes.map((v) => ({ name: v.name, mountPath: v.mountPath, ...(v.mountPropagation ? { mountPropagation: v.mountPropagation } : {}) })),
  ];
  return {
    hostNetwork: true,
    priorityClassName: "system-node-critical",
    serviceAccountName: SERVICE_ACCOUNT,
    nodeSelector: { "kubernetes.io/os": "linux" },
    // Every taint: a NotReady node (no CNI yet) is exactly where this pod must run.
    tolerations: [{ operator: "Exists" }],
    terminationGracePeriodSeconds: 10,
    containers: [{ ...container, volumeMounts: mounts }],
    volumes: [
      hostPath("cni-conf", "/etc/cni/net.d", "DirectoryOrCreate"),
      hostPath("run-gauze", "/run/gauze", "DirectoryOrCreate"),
      // Shared with kube-proxy and every other iptables user on the node: one lock for all.
      hostPath("xtables-lock", "/run/xtables.lock", "FileOrCreate"),
      ...(o.store === "kube" ? [{ name: "net-conf", configMap: { name: CONFIGMAP } }] : []),
      ...extraVolumes.map((v) => hostPath(v.name, v.hostPath, v.type)),
    ],
  };
}

export function manifestObjects(opts: Partial<ManifestOptions> = {}): KubeObject[] {
  const o: ManifestOptions = { ...DEFAULT_MANIFEST, ...opts };
  validate(o);
  const ns = { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE, labels: { ...labels, "pod-security.kubernetes.io/enforce": "privileged" } } };
  const sa = { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: SERVICE_ACCOUNT, namespace: NAMESPACE, labels } };
  const rbac: KubeObject[] = o.store === "kube" ? [
    {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "gauze", labels },
      rules: [
        { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list", "watch"] },
        { apiGroups: [""], resources: ["nodes/status"], verbs: ["patch"] },
        // NetworkPolicy: the agent judges its node's pods by every policy, pod and namespace.
        { apiGroups: [""], resources: ["pods", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: ["list", "watch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "gauze", labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "gauze" },
      subjects: [{ kind: "ServiceAccount", name: SERVICE_ACCOUNT, namespace: NAMESPACE }],
    },
  ] : [];
  const observer: KubeObject[] = o.uninstall ? [] : [{
    apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole",
    metadata: { name: OBSERVER_ROLE, labels: { ...labels, "rbac.authorization.k8s.io/aggregate-to-admin": "true" } }, rules: OBSERVER_RULES,
  }];
  const cm: KubeObject[] = o.store === "kube" ? [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: CONFIGMAP, namespace: NAMESPACE, labels }, data: { "net-conf.json": JSON.stringify(netConf(o), null, 2) + "\n" } }] : [];
  const probe = (path: string, period: number, delay: number) => ({ httpGet: { host: "127.0.0.1", path, port: HEALTH_PORT }, periodSeconds: period, initialDelaySeconds: delay, timeoutSeconds: 2, failureThreshold: 3 });
  const agentSpec = podSpec(o, {
    name: "gauze", image: o.image, command: [IMAGE_BINARY, "agent"],
    args: [...storeArgs(o), "--health-addr", `127.0.0.1:${HEALTH_PORT}`, ...(o.mtu ? ["--mtu", String(o.mtu)] : [])],
    env: NODE_NAME_ENV, securityContext: o.traceProbes ? { ...AGENT_CAPS, capabilities: { ...AGENT_CAPS.capabilities, add: [...AGENT_CAPS.capabilities.add, TRACE_PROBE_CAP] } } : AGENT_CAPS,
    livenessProbe: probe("/healthz", 30, 10),
    readinessProbe: probe("/readyz", 5, 2),
    resources: { requests: { cpu: "100m", memory: "100Mi" } },
  }, [
    // Drops: the kernel's kfree_skb tracepoint, read through a tracefs instance of the agent's own
    // (gauze observe and trace show where packets died and why). Without it, flows still work.
    { name: "tracing", mountPath: "/sys/kernel/tracing", hostPath: "/sys/kernel/tracing", type: "Directory" },
    // The eBPF observer's programs, links and flow table are pinned in the host's bpffs, so an
    // agent's restart (a rolling update, a crash) keeps them and the next agent adopts them.
    { name: "bpffs", mountPath: "/sys/fs/bpf", hostPath: "/sys/fs/bpf", type: "Directory" },
    // --trace-probes: the runtime's pinned pod namespaces, those made after the agent too.
    ...(o.traceProbes ? [{ name: "netns", mountPath: "/run/netns", hostPath: "/run/netns", type: "DirectoryOrCreate", mountPropagation: "HostToContainer" }] : []),
  ]);
  const ds = o.uninstall
    ? {
      apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: UNINSTALL_DAEMONSET, namespace: NAMESPACE, labels },
      spec: {
        selector: { matchLabels: { app: "gauze-uninstall" } },
        template: {
          metadata: { labels: { ...labels, app: "gauze-uninstall" } },
          spec: podSpec(o, {
            name: "uninstall", image: o.image, command: [IMAGE_BINARY, "uninstall"],
            args: [...storeArgs(o), "--bin-dir", "/host/opt/cni/bin", "--wait"],
            env: NODE_NAME_ENV, securityContext: AGENT_CAPS,
            resources: { requests: { cpu: "10m", memory: "50Mi" } },
          }, [
            { name: "cni-bin", mountPath: "/host/opt/cni/bin", hostPath: "/opt/cni/bin", type: "DirectoryOrCreate" },
            { name: "cni-data", mountPath: "/var/lib/cni/networks", hostPath: "/var/lib/cni/networks", type: "DirectoryOrCreate" },
            // The eBPF observer's pins (programs, links, flow table): removed with the rest.
            { name: "bpffs", mountPath: "/sys/fs/bpf", hostPath: "/sys/fs/bpf", type: "Directory" },
          ]),
        },
      },
    }
    : {
      apiVersion: "apps/v1", kind: "DaemonSet", metadata: { name: DAEMONSET, namespace: NAMESPACE, labels },
      spec: {
        selector: { matchLabels: { app: "gauze" } },
        // One node at a time: the agent going away leaves the dataplane, and the next one
        // starts only once this one is ready.
        updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
        template: {
          metadata: { labels: { ...labels, app: "gauze" } },
          spec: {
            ...agentSpec,
            containers: agentSpec.containers.map((c) => ({ ...c, volumeMounts: [...c.volumeMounts, { name: "cni-bin", mountPath: AGENT_CNI_BIN, readOnly: true }] })),
            initContainers: [{
              name: "install-cni", image: o.image, command: [IMAGE_BINARY, "install-cni"], args: ["--bin-dir", "/host/opt/cni/bin"],
              securityContext: { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              volumeMounts: [{ name: "cni-bin", mountPath: "/host/opt/cni/bin" }],
              resources: { requests: { cpu: "10m", memory: "20Mi" } },
            }],
            volumes: [...agentSpec.volumes, hostPath("cni-bin", "/opt/cni/bin", "DirectoryOrCreate")],
          },
        },
      },
    };
  return [ns, sa, ...rbac, ...observer, ...cm, ds as KubeObject];
}

export function renderManifest(opts: Partial<ManifestOptions> = {}): string {
  const o = { ...DEFAULT_MANIFEST, ...opts };
  const head = [
    `# gauze ${GAUZE_VERSION}: ${o.uninstall ? "removes gauze from every node (run after deleting the kube-gauze-ds DaemonSet)" : "pod networking for every node"}.`,
    `# Rendered by: gauze manifests${o.podCidr !== DEFAULT_MANIFEST.podCidr ? ` --pod-cidr ${o.podCidr}` : ""}${o.backend !== "vxlan" ? ` --backend ${o.backend}` : ""}${o.image !== DEFAULT_MANIFEST.image ? ` --image ${o.image}` : ""}${o.store !== "kube" ? ` --store ${o.store} --etcd-endpoints ${o.etcdEndpoints}` : ""}${o.mtu ? ` --mtu ${o.mtu}` : ""}${o.ipv6Network ? ` --ipv6 ${o.ipv6Network}` : ""}${o.datapath === "ebpf" ? " --datapath ebpf" : ""}${o.traceProbes ? " --trace-probes" : ""}${o.uninstall ? " --uninstall" : ""}`,
  ];
  return head.join("\n") + "\n" + manifestObjects(o).map((x) => "---\n" + stringify(x, { lineWidth: 0 })).join("");
}

/** The objects of a multi-document YAML manifest; a document that is not an object is an error naming it. */
export function parseManifest(text: string, source: string): KubeObject[] {
  const out: KubeObject[] = [];
  parseAllDocuments(text).forEach((d, i) => {
    if (d.errors.length) throw new ManifestError(`${source}: document ${i + 1}: ${d.errors[0]!.message}`);
    const o = d.toJS() as unknown;
    if (o === null || o === undefined) return;
    const k = o as Partial<KubeObject>;
    if (typeof o !== "object" || typeof k.kind !== "string" || typeof k.apiVersion !== "string" || typeof k.metadata?.name !== "string") {
      throw new ManifestError(`${source}: document ${i + 1} is not a Kubernetes object (kind, apiVersion and metadata.name)`);
    }
    out.push(o as KubeObject);
  });
  return out;
}
