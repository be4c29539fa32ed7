// `gauze doctor --kubeconfig`: one report for a cluster. The cluster's checks from the API
// (the DaemonSet rolled out, every node with an agent pod that is ready, every node Ready or
// named with kubelet's reason, every node's podCIDR inside the Network the agents use), then each
// node's own doctor, run in its agent container through pods/exec (`gauze doctor --host`: the
// node's conflists, a foreign CNI config among them, devices, routes, the agent), all nodes at
// once; a node that cannot be asked is a failed check naming it, and the others are still asked.
import { parseCIDR, prefixContains } from "../net/cidr.ts";
import type { KubeClusterSource } from "../observe/cluster-source.ts";
import type { CheckResult } from "./check.ts";
import { type DoctorReport, formatReport } from "./run.ts";

export interface ClusterDoctorReport {
  cluster: string;
  ok: boolean;
  checks: CheckResult[];
  nodes: { node: string; report?: DoctorReport; error?: string }[];
  ms: number;
}

const check = (id: string, title: string, bad: string[], good: string, fix: string, warn = false): CheckResult =>
  bad.length ? { id, group: "cluster", title, status: warn ? "warn" : "fail", evidence: bad, fix } : { id, group: "cluster", title, status: "ok", evidence: [good] };

export async function clusterDoctor(src: KubeClusterSource, progress?: (line: string) => void): Promise<ClusterDoctorReport> {
  const t0 = performance.now();
  const { daemonSet: ds, nodes } = src.raw;
  const ns = src.namespace;
  progress?.(`asking ${nodes.length} node(s)' agents through pods/exec`);
  const perNode = Promise.all(nodes.map(async (n) => {
    const node = n.metadata!.name!;
    const text = await src.doctorJson(node, 60_000);
    try {
      const r = JSON.parse(text) as DoctorReport & { error?: string };
      return Array.isArray(r.checks) ? { node, report: { ...r, node } } : { node, error: r.error ?? text };
    } catch {
      return { node, error: text.trim().slice(0, 300) };
    }
  }));
  const network = await src.network();
  const st = ds.status ?? { desiredNumberScheduled: 0, currentNumberScheduled: 0, numberReady: 0, numberMisscheduled: 0 };
  const want = st.desiredNumberScheduled;
  const rollout: string[] = [];
  if ((st.numberReady ?? 0) < want) rollout.push(`${st.numberReady ?? 0} of ${want} pod(s) ready`);
  if ((st.updatedNumberScheduled ?? want) < want) rollout.push(`${st.updatedNumberScheduled ?? 0} of ${want} pod(s) run the current template`);
  const checks: CheckResult[] = [
    check("cluster.daemonset", `DaemonSet ${ns}/${src.daemonSet} rolled out`, rollout, `${want} of ${want} pod(s) ready and up to date`, `kubectl -n ${ns} rollout status ds/${src.daemonSet}; kubectl -n ${ns} get pods -o wide`),
    check("cluster.agent-pods", "every node has a ready agent pod", src.problems().map((p) => `${p.node}: ${p.why}`), `an agent pod on each of ${nodes.length} node(s)`, `kubectl -n ${ns} describe ds/${src.daemonSet} (taints, nodeSelector), kubectl -n ${ns} logs <pod> -c gauze`),
    check("cluster.nodes-ready", "every node is Ready", nodes.flatMap((n) => {
      const r = n.status?.conditions?.find((c) => c.type === "Ready");
      return r?.status === "True" ? [] : [`${n.metadata!.name} is NotReady: ${r?.reason ?? "no Ready condition"}${r?.message ? ` (${r.message})` : ""}`];
    }), `${nodes.length} of ${nodes.length} Ready`, "see that node's doctor below (a missing conflist keeps a node NotReady: NetworkPluginNotReady)"),
  ];
  const net = network ? parseCIDR(network)?.prefix : undefined;
  const cidrBad = nodes.flatMap((n) => {
    const c = n.spec?.podCIDR;
    if (!c) return [`${n.metadata!.name} has no podCIDR (the controller manager gives one with --allocate-node-cidrs and --cluster-cidr)`];
    const p = parseCIDR(c)?.prefix;
    if (net && p && !(prefixContains(net, p.ip) && p.bits >= net.bits)) return [`${n.metadata!.name}'s podCIDR ${c} is outside the Network ${network}`];
    return [];
  });
  checks.push(check("cluster.pod-cidrs", `every node's podCIDR is inside the Network${network ? ` (${network})` : ""}`, cidrBad,
    network ? `${nodes.length} podCIDR(s) inside ${network}` : `${nodes.length} podCIDR(s); the agents' Network could not be read`,
    `the controller manager's --cluster-cidr must be net-conf.json's Network (kubectl -n ${ns} get cm -o yaml)`));
  const results = await perNode;
  for (const r of results) if (r.error !== undefined) checks.push({ id: "cluster.node-doctor", group: "cluster", title: `doctor ran on ${r.node}`, status: "fail", evidence: [`${r.node}: ${r.error}`], fix: src.doctorCommand(r.node) });
  const ok = checks.every((c) => c.status !== "fail") && results.every((r) => r.report?.ok !== false);
  return { cluster: src.label, ok, checks, nodes: results, ms: Math.round(performance.now() - t0) };
}

export function formatClusterReport(r: ClusterDoctorReport, color: boolean): string {
  const cluster = formatReport({ ok: r.ok, checks: r.checks, fixed: [], ms: r.ms }, color).replace(/^gauze doctor/, `gauze doctor: ${r.cluster}`);
  const nodes = r.nodes.filter((n) => n.report).map((n) => formatReport(n.report!, color));
  return [cluster, ...nodes].join("\n");
}
