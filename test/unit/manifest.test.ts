// The install manifest: the checked-in files are the renderer's default output; every object
// passes the Kubernetes API's schemas (kubernetes-models, generated from a current release's
// OpenAPI); the ClusterRole grants exactly the requests the kube store makes (recorded against
// the API stand-in), no more and no less; bad options are clear errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { Namespace, ServiceAccount, ConfigMap } from "kubernetes-models/v1";
import { ClusterRole, ClusterRoleBinding } from "kubernetes-models/rbac.authorization.k8s.io/v1";
import { DaemonSet } from "kubernetes-models/apps/v1";
import { manifestObjects, renderManifest, ManifestError, type KubeObject } from "../../src/deploy/manifest.ts";
import { resolveNetwork } from "../../src/store/registry.ts";
import { KubeRegistry } from "../../src/store/kube-registry.ts";
import { startFakeNodesApi } from "../support/fake-nodes-api.ts";
import { pino } from "pino";
import { Registry } from "prom-client";
import { PolicyEnforcer } from "../../src/agent/policy.ts";

/** The pod template's fields this file reads. */
interface Container { command: string[]; env: unknown; securityContext: { privileged?: boolean; capabilities: unknown }; livenessProbe: { httpGet: { host: string; path: string } }; readinessProbe: { httpGet: { host: string; path: string } } }
interface Pod { hostNetwork: boolean; priorityClassName: string; tolerations: unknown; containers: Container[]; initContainers: Container[]; volumes: { name: string; hostPath?: { path: string; type: string } }[] }

const ROOT = join(import.meta.dirname, "..", "..");
const MODELS: Record<string, new (o: never) => { validate(): void }> = { Namespace, ServiceAccount, ConfigMap, ClusterRole, ClusterRoleBinding, DaemonSet } as never;

function validateAll(objects: unknown[]): void {
  for (const o of objects as KubeObject[]) {
    const Model = MODELS[o.kind];
    assert.ok(Model, `no schema for ${o.kind}`);
    new Model(o as never).validate();
  }
}

test("deploy/kube-gauze.yml and deploy/kube-gauze-uninstall.yml are the default renders", () => {
  assert.equal(readFileSync(join(ROOT, "deploy", "kube-gauze.yml"), "utf8"), renderManifest(), "re-render: gauze manifests > deploy/kube-gauze.yml");
  assert.equal(readFileSync(join(ROOT, "deploy", "kube-gauze-uninstall.yml"), "utf8"), renderManifest({ uninstall: true }), "re-render: gauze manifests --uninstall > deploy/kube-gauze-uninstall.yml");
});

test("every object of every render passes the Kubernetes API's schemas, and a broken one does not", () => {
  for (const file of ["kube-gauze.yml", "kube-gauze-uninstall.yml"]) {
    const docs = parseAllDocuments(readFileSync(join(ROOT, "deploy", file), "utf8")).map((d) => d.toJS() as unknown).filter(Boolean);
    // The install render also ships the gauze-observer ClusterRole users are bound to (no binding: users choose who).
    assert.deepEqual((docs as KubeObject[]).map((d) => d.kind), ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", ...(file === "kube-gauze.yml" ? ["ClusterRole"] : []), "ConfigMap", "DaemonSet"]);
    validateAll(docs);
  }
  validateAll(manifestObjects({ store: "etcd", etcdEndpoints: "https://10.0.0.1:2379", backend: "host-gw", mtu: 1400, podCidr: "10.42.0.0/16" }));
  // The validator can say no: a container without an image name, a toleration of the wrong type.
  const ds = structuredClone(manifestObjects().at(-1)!) as unknown as { spec: { template: { spec: { containers: { image: unknown }[]; tolerations: unknown } } } };
  ds.spec.template.spec.containers[0]!.image = 42;
  assert.throws(() => validateAll([ds]));
  ds.spec.template.spec.containers[0]!.image = "x";
  ds.spec.template.spec.tolerations = "all";
  assert.throws(() => validateAll([ds]));
});

test("the DaemonSet: host network, node-critical, every taint, not privileged, NET_ADMIN, NET_RAW, BPF and PERFMON only, probes on loopback, one node at a time", () => {
  const ds = manifestObjects().find((o) => o.kind === "DaemonSet") as unknown as { spec: { updateStrategy: { rollingUpdate: { maxUnavailable: number } }; template: { spec: Pod } } };
  const pod = ds.spec.template.spec;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.priorityClassName, "system-node-critical");
  assert.deepEqual(pod.tolerations, [{ operator: "Exists" }]);
  assert.equal(ds.spec.updateStrategy.rollingUpdate.maxUnavailable, 1);
  const agent = pod.containers[0]!;
  assert.equal(agent.securityContext.privileged, false);
  assert.deepEqual(agent.securityContext.capabilities, { add: ["NET_ADMIN", "NET_RAW", "BPF", "PERFMON"], drop: ["ALL"] });
  assert.deepEqual(agent.env, [{ name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } }]);
  for (const p of [agent.livenessProbe, agent.readinessProbe]) assert.equal(p.httpGet.host, "127.0.0.1");
  assert.deepEqual([agent.livenessProbe.httpGet.path, agent.readinessProbe.httpGet.path], ["/healthz", "/readyz"]);
  assert.deepEqual(pod.initContainers.map((c) => c.command.slice(1)), [["install-cni"]]);
  // The node's CNI bin dir, read-only in the agent's container (doctor's cni.plugins looks there).
  assert.deepEqual((agent as unknown as { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }).volumeMounts.find((m) => m.name === "cni-bin"), { name: "cni-bin", mountPath: "/host/opt/cni/bin", readOnly: true });
  assert.deepEqual(pod.initContainers[0]!.securityContext.capabilities, { drop: ["ALL"] });
  const vols = Object.fromEntries(pod.volumes.map((v) => [v.name, v.hostPath ? `${v.hostPath.path} ${v.hostPath.type}` : "configMap"]));
  assert.deepEqual(vols, { "cni-conf": "/etc/cni/net.d DirectoryOrCreate", "run-gauze": "/run/gauze DirectoryOrCreate", "xtables-lock": "/run/xtables.lock FileOrCreate", "net-conf": "configMap", "tracing": "/sys/kernel/tracing Directory", "bpffs": "/sys/fs/bpf Directory", "cni-bin": "/opt/cni/bin DirectoryOrCreate" });
});

test("the ConfigMap's net-conf.json is what the agent reads, by flannel's rules", () => {
  const cm = manifestObjects({ podCidr: "10.42.0.0/16", backend: "host-gw" }).find((o) => o.kind === "ConfigMap") as unknown as { data: Record<string, string> };
  const n = resolveNetwork(JSON.parse(cm.data["net-conf.json"]!));
  assert.equal(n.network.bits, 16);
  assert.equal(n.subnetLen, 24);
  assert.equal(n.backendType, "host-gw");
  assert.throws(() => resolveNetwork({ Network: "10.42.0.0/16", EnableIPv6: true }), /EnableIPv6 is true and IPv6Network undefined is not an IPv6 CIDR/);
});

test("--trace-probes adds exactly CAP_SYS_ADMIN and the host's /run/netns (HostToContainer) to the agent, nothing by default", () => {
  type C = { name: string; securityContext: { capabilities: { add: string[] } }; volumeMounts: { name: string; mountPath: string; mountPropagation?: string }[] };
  const agent = (o: Parameters<typeof manifestObjects>[0]) => ((manifestObjects(o).find((x) => x.kind === "DaemonSet") as unknown as { spec: { template: { spec: { containers: C[]; volumes: { name: string; hostPath?: { path: string } }[] } } } }).spec.template.spec);
  const plain = agent({}), opted = agent({ traceProbes: true });
  assert.deepEqual(plain.containers[0]!.securityContext.capabilities.add, ["NET_ADMIN", "NET_RAW", "BPF", "PERFMON"]);
  assert.ok(!plain.containers[0]!.volumeMounts.some((m) => m.mountPath === "/run/netns"));
  assert.deepEqual(opted.containers[0]!.securityContext.capabilities.add, ["NET_ADMIN", "NET_RAW", "BPF", "PERFMON", "SYS_ADMIN"]);
  assert.deepEqual(opted.containers[0]!.volumeMounts.find((m) => m.mountPath === "/run/netns"), { name: "netns", mountPath: "/run/netns", mountPropagation: "HostToContainer" });
  assert.equal(opted.volumes.find((v) => v.name === "netns")?.hostPath?.path, "/run/netns");
  assert.match(renderManifest({ traceProbes: true }), /# Rendered by: gauze manifests --trace-probes/);
});

test("every backend a lab runs renders, by the same names; --ipv6 makes the ConfigMap dual-stack", () => {
  const conf = (o: Parameters<typeof manifestObjects>[0]) => resolveNetwork(JSON.parse((manifestObjects(o).find((x) => x.kind === "ConfigMap") as unknown as { data: Record<string, string> }).data["net-conf.json"]!));
  for (const b of ["vxlan", "host-gw", "vxlan-direct", "macvlan", "wireguard"]) {
    const n = conf({ backend: b });
    assert.equal(n.backendType, b === "vxlan-direct" ? "vxlan" : b);
    assert.equal((n.backendConfig as { DirectRouting?: boolean }).DirectRouting, b === "vxlan-direct" ? true : undefined, b);
  }
  const dual = conf({ ipv6Network: "fd00:10:244::/56" });
  assert.equal(dual.ipv6 && `${dual.ipv6.subnetLen}`, "64", "IPv6 subnets of /64 by default");
  assert.throws(() => manifestObjects({ ipv6Network: "10.0.0.0/8" }), /--ipv6 10.0.0.0\/8: give an IPv6 network/);
  assert.throws(() => manifestObjects({ ipv6Network: "fd00::/56", backend: "wireguard" }), /dual-stack runs on vxlan, vxlan-direct and host-gw/);
});

test("bad options are clear errors", () => {
  assert.throws(() => manifestObjects({ podCidr: "10.244.0.0/25" }), (e: Error) => e instanceof ManifestError && /\/24 or wider/.test(e.message));
  assert.throws(() => manifestObjects({ backend: "flannel" }), /use vxlan, host-gw, vxlan-direct, macvlan, wireguard/);
  assert.throws(() => manifestObjects({ store: "etcd" }), /needs --etcd-endpoints/);
  assert.throws(() => manifestObjects({ image: "Not An Image" }), /not an image reference/);
  assert.throws(() => manifestObjects({ mtu: 70000 }), /576 to 65535/);
});

test("RBAC: the ClusterRole grants exactly what the kube store and the NetworkPolicy enforcer ask the API for", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gauze-rbac-"));
  const api = await startFakeNodesApi(dir);
  const netConf = join(dir, "net-conf.json");
  writeFileSync(netConf, JSON.stringify({ Network: "10.244.0.0/16" }));
  try {
    // Everything the agent and uninstall do through the store.
    const r = await KubeRegistry.open({ kubeconfig: api.kubeconfig, netConf });
    const stop = r.watch(() => undefined);
    const lease = await r.acquireLease({ node: "kind-worker", publicIp: "172.18.0.3", backendType: "vxlan", backendData: { vtepMac: "0e:47:ac:12:00:03" } }, 60_000);
    await r.renewLease(lease, 60_000);
    await r.listLeases();
    await new Promise((res) => setTimeout(res, 300));
    await r.releaseLease(lease.subnet);
    stop();
    r.close();
    const programmed: string[] = [];
    // And everything the NetworkPolicy enforcer reads (it lists, then watches, three kinds).
    const enforcer = new PolicyEnforcer({ node: "kind-worker", kubeconfig: api.kubeconfig, log: pino({ level: "silent" }), registry: new Registry(), nodeIps: () => [],
      nft: { apply: (text) => void programmed.push(text), has: () => false } });
    await enforcer.start();
    const watching = () => api.requests.filter((q) => q.includes("watch=true") && /\/(pods|namespaces|networkpolicies)\?/.test(q)).length >= 3;
    for (let i = 0; i < 100 && !(programmed.length && watching()); i++) await new Promise((res) => setTimeout(res, 100));
    enforcer.stop();
    assert.equal(programmed.length, 1, "the enforcer programmed the node once its three lists arrived");
    // Each request as (API group, resource, verb), the way the API server's authorizer sees it.
    const asked = new Set(api.requests.map((q) => {
      const [method, url] = q.split(" ") as [string, string];
      const u = new URL(url, "http://x");
      const core = u.pathname.startsWith("/api/v1/");
      const parts = u.pathname.split("/").slice(core ? 3 : 4); // after /api/v1 or /apis/<group>/<version>
      const group = core ? "core" : u.pathname.split("/")[2]!;
      const resource = parts.length === 3 ? `${parts[0]}/${parts[2]}` : parts[0]!;
      const verb = method === "PATCH" ? "patch" : u.searchParams.get("watch") === "true" ? "watch" : parts.length === 1 ? "list" : "get";
      return `${group} ${resource} ${verb}`;
    }));
    const role = manifestObjects().find((o) => o.kind === "ClusterRole") as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
    const granted = new Set(role.rules.flatMap((rule) => rule.apiGroups.flatMap((g) => rule.resources.flatMap((res) => rule.verbs.map((v) => `${g === "" ? "core" : g} ${res} ${v}`)))));
    assert.deepEqual([...asked].sort(), [...granted].sort(), "every request granted, every grant used");
    assert.ok(![...granted].some((g) => g.includes("*") || g.includes("secrets")), "no wildcards, no secrets");
  } finally {
    api.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
