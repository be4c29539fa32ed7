// With --kubeconfig: the cluster's view, through the official client. Agent pods are looked for
// in every namespace (installs put them in kube-flannel, gauze-system, ...: an empty
// kube-system is not an absent CNI), CrashLooping ones have their last log lines matched against
// known signatures, NotReady nodes are listed with kubelet's reason.
import type { V1Pod } from "@kubernetes/client-node";
import { matchSignature } from "../signatures.ts";
import { type Check, ok } from "../check.ts";

const AGENT_POD = /^(gauze|kube-flannel|flannel)(-ds)?-/;

async function client(path: string) {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc.makeApiClient(k8s.CoreV1Api);
}

const isAgent = (p: V1Pod) => AGENT_POD.test(p.metadata?.name ?? "") || ["gauze", "flannel"].includes(p.metadata?.labels?.app ?? p.metadata?.labels?.["k8s-app"] ?? "");

export const kubeChecks: Check[] = [
  {
    id: "kube.agent-pods", group: "kubernetes", title: "agent pods exist (searched in every namespace)",
    async run(ctx) {
      const api = await client(ctx.kubeconfig!);
      const pods = (await api.listPodForAllNamespaces()).items.filter(isAgent);
      if (pods.length === 0) {
        return { status: "fail", evidence: ["no gauze (or flannel) agent pod in any namespace"], fix: "install the agent DaemonSet; if it exists, check that it has nodes to run on (taints, nodeSelector)" };
      }
      const byNs = new Map<string, number>();
      for (const p of pods) byNs.set(p.metadata!.namespace!, (byNs.get(p.metadata!.namespace!) ?? 0) + 1);
      const where = [...byNs].map(([ns, n]) => `${n} in ${ns}`).join(", ");
      // A CrashLooping pod's phase is still Running: look at its containers.
      const notReady = pods.filter((p) => p.status?.phase !== "Running" || (p.status?.containerStatuses ?? []).some((c) => !c.ready));
      const evidence = [`agent pods: ${where}${byNs.has("kube-system") ? "" : " (none in kube-system: kubectl -n kube-system get pods shows nothing, look in these namespaces)"}`];
      if (notReady.length) return { status: "warn", evidence: [...evidence, ...notReady.map((p) => `${p.metadata!.namespace}/${p.metadata!.name} is ${p.status?.containerStatuses?.find((c) => c.state?.waiting)?.state?.waiting?.reason ?? p.status?.phase}`)], fix: "see kube.crashloop for why" };
      return ok(...evidence);
    },
  },
  {
    id: "kube.crashloop", group: "kubernetes", title: "no pod CrashLoops with a known networking signature",
    async run(ctx) {
      const api = await client(ctx.kubeconfig!);
      const pods = (await api.listPodForAllNamespaces()).items.filter((p) =>
        (p.status?.containerStatuses ?? []).some((c) => c.state?.waiting?.reason === "CrashLoopBackOff"));
      if (pods.length === 0) return ok("no pod in CrashLoopBackOff");
      const evidence: string[] = [];
      const fixes: string[] = [];
      for (const p of pods) {
        const name = p.metadata!.name!;
        const namespace = p.metadata!.namespace!;
        const container = p.status!.containerStatuses!.find((c) => c.state?.waiting?.reason === "CrashLoopBackOff")!.name;
        let log = "";
        try {
          log = await api.readNamespacedPodLog({ name, namespace, container, previous: true, tailLines: 20 });
        } catch (e) {
          log = `(logs unavailable: ${(e as Error).message})`;
        }
        const sig = matchSignature(log);
        const last = log.trim().split("\n").filter(Boolean).slice(-2).join(" | ");
        evidence.push(`${namespace}/${name} (${container}) CrashLoopBackOff: ${sig ? `${sig.meaning}: "${sig.match}"` : `last log lines: ${last || "(empty)"}`}`);
        if (sig) fixes.push(sig.fix);
      }
      return { status: "fail", evidence, fix: fixes.length ? [...new Set(fixes)].join("; ") : "kubectl logs --previous on the pods above" };
    },
  },
  {
    id: "kube.nodes", group: "kubernetes", title: "every node is Ready",
    async run(ctx) {
      const api = await client(ctx.kubeconfig!);
      const nodes = (await api.listNode()).items;
      const notReady = nodes.filter((n) => n.status?.conditions?.find((c) => c.type === "Ready")?.status !== "True");
      if (notReady.length === 0) return ok(`${nodes.length} node(s) Ready`);
      const evidence = notReady.map((n) => {
        const c = n.status?.conditions?.find((x) => x.type === "Ready");
        return `${n.metadata?.name} NotReady: ${c?.message ?? c?.reason ?? "no Ready condition"}`;
      });
      const sig = matchSignature(evidence.join("\n"));
      const noCidr = notReady.filter((n) => !n.spec?.podCIDR);
      if (noCidr.length) evidence.push(`${noCidr.map((n) => n.metadata?.name).join(", ")}: no spec.podCIDR`);
      return { status: "fail", evidence, fix: sig?.fix ?? "kubectl describe node: the Ready condition's message says what kubelet waits for" };
    },
  },
];
