// The Kubernetes API as the registry (flannel's kube subnet manager, gauze's names): a node's
// subnet is its spec.podCIDR, given by the controller manager; the agent publishes its public IP
// and VTEP MAC as node annotations under gauze.dev/ and the node condition
// NetworkUnavailable=False, both through nodes/status (a strategic merge patch, so other
// conditions stay). Peers come from a list+watch of Nodes (the client's informer: it resumes
// from the last resourceVersion and re-lists on 410 Gone). RBAC needed: nodes get/list/watch,
// nodes/status patch.
import { readFileSync } from "node:fs";
import type { CoreV1Api, KubeConfig, V1Node } from "@kubernetes/client-node";
import { formatPrefix, parseCIDR, prefixContains } from "../net/cidr.ts";
import { type Lease, type LeaseRequest, type NetworkConfig, type SubnetRegistry, LeaseLostError, RegistryError, leaseRecord, parseRecord, resolveNetwork } from "./registry.ts";

export const ANNOTATION = {
  publicIp: "gauze.dev/public-ip",
  backendType: "gauze.dev/backend-type",
  backendData: "gauze.dev/backend-data",
  /** Dual-stack: the node's IPv6 underlay address and the IPv6 tunnel's data (its VTEP MAC). */
  publicIpv6: "gauze.dev/public-ipv6",
  backendV6Data: "gauze.dev/backend-v6-data",
} as const;

/** A Node's pod CIDR of one family: podCIDRs holds one per family on a dual-stack cluster (podCIDR is the first). */
function podCidrOf(n: V1Node, family: 4 | 6): string | undefined {
  const all = [...(n.spec?.podCIDRs ?? []), ...(n.spec?.podCIDR ? [n.spec.podCIDR] : [])];
  return all.find((c) => c.includes(":") === (family === 6)) ?? (family === 4 ? all[0] : undefined);
}

export interface KubeOptions {
  /** Absent: in-cluster config (a DaemonSet pod's service account). */
  kubeconfig?: string;
  /** flannel's net-conf.json, usually mounted from a ConfigMap. */
  netConf: string;
}

type K8s = typeof import("@kubernetes/client-node");

/** A Node as a lease: its podCIDR and gauze's annotations. Nodes gauze has not set up yet are not leases. */
function nodeLease(n: V1Node): Lease | undefined {
  const a = n.metadata?.annotations ?? {};
  const name = n.metadata?.name ?? "?";
  const subnet = podCidrOf(n, 4);
  if (!subnet || !a[ANNOTATION.publicIp]) return undefined;
  const key = `node/${name}`;
  const parsed = parseCIDR(subnet);
  if (!parsed) return leaseRecord(key, subnet, `podCIDR ${JSON.stringify(subnet)} is not a CIDR`);
  const data = parseRecord(a[ANNOTATION.backendData] ?? "{}");
  if (typeof data === "string") return leaseRecord(key, formatPrefix(parsed.prefix), `annotation ${ANNOTATION.backendData}: ${data}`);
  const v6 = parseRecord(a[ANNOTATION.backendV6Data] ?? "{}");
  const v6Cidr = podCidrOf(n, 6);
  return leaseRecord(key, formatPrefix(parsed.prefix), {
    node: name, publicIp: a[ANNOTATION.publicIp], backendType: a[ANNOTATION.backendType] ?? "vxlan", vtepMac: data.VtepMAC, publicKey: data.PublicKey, expiresAt: Number.MAX_SAFE_INTEGER,
    // An IPv6 podCIDR that does not parse is passed on as written: the IPv6 side refuses it, named.
    ...(v6Cidr ? { ipv6Subnet: ((c) => (c ? formatPrefix(c.prefix) : v6Cidr))(parseCIDR(v6Cidr)) } : {}),
    publicIpv6: a[ANNOTATION.publicIpv6], v6VtepMac: typeof v6 === "object" ? v6.VtepMAC : undefined,
  });
}

export class KubeRegistry implements SubnetRegistry {
  readonly kind = "kube";
  private k8s!: K8s;
  private kc!: KubeConfig;
  private api!: CoreV1Api;
  private stopWatch?: () => void;

  private constructor(readonly o: KubeOptions) {}

  /** The client library is loaded only when this store is used (it is large). */
  static async open(o: KubeOptions): Promise<KubeRegistry> {
    const r = new KubeRegistry(o);
    r.k8s = await import("@kubernetes/client-node");
    r.kc = new r.k8s.KubeConfig();
    try {
      if (o.kubeconfig) r.kc.loadFromFile(o.kubeconfig);
      else r.kc.loadFromCluster();
    } catch (e) {
      throw new RegistryError(`cannot load ${o.kubeconfig ? `kubeconfig ${o.kubeconfig}` : "the in-cluster config"}: ${(e as Error).message}`, "pass --kubeconfig, or run as a pod with a service account");
    }
    r.api = r.kc.makeApiClient(r.k8s.CoreV1Api);
    return r;
  }

  private fail(e: unknown, what: string): never {
    if (e instanceof RegistryError) throw e;
    const code = (e as { code?: number }).code;
    const fix = code === 403 ? "the agent's service account needs nodes get/list/watch and nodes/status patch"
      : code === 404 ? "--node must be this node's name in Kubernetes (the DaemonSet passes spec.nodeName as NODE_NAME)"
      : "check the API server and the agent's credentials";
    // The client's message repeats the code on its first line ("HTTP-Code: 404"): say it once.
    const text = (e as Error).message.split("\n")[0]!.replace(/^HTTP-Code: \d+$/, "");
    throw new RegistryError(`Kubernetes API: ${what}: ${code ? `HTTP ${code}${code === 404 ? " not found" : ""}` : ""}${text && code ? `: ${text}` : text}`, fix);
  }

  async getNetworkConfig(): Promise<NetworkConfig> {
    try {
      return JSON.parse(readFileSync(this.o.netConf, "utf8")) as NetworkConfig;
    } catch (e) {
      throw new RegistryError(`network config ${this.o.netConf}: ${(e as Error).message}`, "mount the gauze ConfigMap's net-conf.json there, e.g. {\"Network\": \"10.244.0.0/16\", \"Backend\": {\"Type\": \"vxlan\"}}");
    }
  }

  private async publish(req: LeaseRequest): Promise<void> {
    const now = new Date().toISOString();
    const body = {
      metadata: {
        annotations: {
          [ANNOTATION.publicIp]: req.publicIp, [ANNOTATION.backendType]: req.backendType, [ANNOTATION.backendData]: JSON.stringify({ ...(req.backendData.vtepMac ? { VtepMAC: req.backendData.vtepMac } : {}), ...(req.backendData.publicKey ? { PublicKey: req.backendData.publicKey } : {}) }),
          ...(req.publicIpv6 ? { [ANNOTATION.publicIpv6]: req.publicIpv6, [ANNOTATION.backendV6Data]: JSON.stringify(req.backendData.v6VtepMac ? { VtepMAC: req.backendData.v6VtepMac } : {}) } : {}),
        },
      },
      status: { conditions: [{ type: "NetworkUnavailable", status: "False", reason: "GauzeIsUp", message: "gauze agent is running on this node", lastTransitionTime: now, lastHeartbeatTime: now }] },
    };
    const opts = this.k8s.setHeaderOptions("Content-Type", this.k8s.PatchStrategy.StrategicMergePatch);
    await this.api.patchNodeStatus({ name: req.node, body }, opts).catch((e) => this.fail(e, `patching node ${req.node}`));
  }

  async acquireLease(req: LeaseRequest, ttlMs: number, _prefer?: string): Promise<Lease> {
    const net = resolveNetwork(await this.getNetworkConfig());
    const node = await this.api.readNode({ name: req.node }).catch((e) => this.fail(e, `reading node ${req.node}`));
    const cidr = podCidrOf(node, 4);
    if (!cidr) {
      throw new RegistryError(`node ${req.node} pod cidr not assigned`, `have the controller manager allocate node CIDRs: kubeadm init --pod-network-cidr=${formatPrefix(net.network)}, or kube-controller-manager --allocate-node-cidrs=true --cluster-cidr=${formatPrefix(net.network)}`);
    }
    const p = parseCIDR(cidr);
    if (!p || !prefixContains(net.network, p.host) || p.prefix.bits < net.network.bits) {
      throw new RegistryError(`node ${req.node} has podCIDR ${cidr}, outside the configured Network ${formatPrefix(net.network)}`, "make net-conf.json's Network the cluster CIDR the controller manager allocates from");
    }
    let ipv6Subnet: string | undefined;
    if (net.ipv6) {
      const v6 = podCidrOf(node, 6);
      const p6 = v6 ? parseCIDR(v6) : undefined;
      if (!p6 || !prefixContains(net.ipv6.network, p6.host) || p6.prefix.bits < net.ipv6.network.bits) {
        throw new RegistryError(`node ${req.node} has ${v6 ? `IPv6 podCIDR ${v6}, outside IPv6Network ${formatPrefix(net.ipv6.network)}` : "no IPv6 podCIDR, and the network config has EnableIPv6"}`,
          `allocate dual-stack node CIDRs: kube-controller-manager --cluster-cidr=${formatPrefix(net.network)},${formatPrefix(net.ipv6.network)} --node-cidr-mask-size-ipv6=${net.ipv6.subnetLen}`);
      }
      ipv6Subnet = formatPrefix(p6.prefix);
    }
    await this.publish(req);
    return { subnet: formatPrefix(p.prefix), node: req.node, publicIp: req.publicIp, backendType: req.backendType, backendData: req.backendData, expiresAt: Date.now() + ttlMs, ...(ipv6Subnet ? { ipv6Subnet } : {}), ...(req.publicIpv6 ? { publicIpv6: req.publicIpv6 } : {}) };
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<Lease> {
    // No TTL in Kubernetes: the node's podCIDR is the lease. Still ours only while it is unchanged.
    const node = await this.api.readNode({ name: lease.node }).catch((e) => this.fail(e, `reading node ${lease.node}`));
    const cidr = podCidrOf(node, 4);
    const now = cidr ? parseCIDR(cidr) : undefined;
    if (!now || formatPrefix(now.prefix) !== lease.subnet) throw new LeaseLostError(lease.subnet, `node ${lease.node} has podCIDR ${cidr ?? "none"} now`);
    await this.publish(lease);
    return { ...lease, expiresAt: Date.now() + ttlMs };
  }

  async listLeases(): Promise<Lease[]> {
    const list = await this.api.listNode().catch((e) => this.fail(e, "listing nodes"));
    return list.items.map(nodeLease).filter((l): l is Lease => !!l);
  }

  async releaseLease(subnet: string): Promise<void> {
    const list = await this.api.listNode().catch((e) => this.fail(e, "listing nodes"));
    const node = list.items.find((n) => nodeLease(n)?.subnet === subnet);
    if (!node) return;
    const body = { metadata: { annotations: { [ANNOTATION.publicIp]: null, [ANNOTATION.backendType]: null, [ANNOTATION.backendData]: null, [ANNOTATION.publicIpv6]: null, [ANNOTATION.backendV6Data]: null } } };
    await this.api.patchNodeStatus({ name: node.metadata!.name!, body }, this.k8s.setHeaderOptions("Content-Type", this.k8s.PatchStrategy.StrategicMergePatch)).catch((e) => this.fail(e, "removing annotations"));
  }

  watch(onChange: () => void): () => void {
    const informer = this.k8s.makeInformer(this.kc, "/api/v1/nodes", () => this.api.listNode());
    let stopped = false;
    for (const verb of ["add", "update", "delete"] as const) informer.on(verb, () => onChange());
    // A dropped connection ends the informer with an error: start it again (it resumes from the
    // last resourceVersion; after 410 Gone it has already re-listed).
    informer.on("error", () => {
      onChange();
      if (!stopped) setTimeout(() => { if (!stopped) void informer.start().catch(() => undefined); }, 500);
    });
    void informer.start().catch(() => undefined);
    this.stopWatch = () => { stopped = true; void informer.stop(); };
    return this.stopWatch;
  }

  close(): void {
    this.stopWatch?.();
  }
}
