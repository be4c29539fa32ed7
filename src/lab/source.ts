// The lab as the source observe, trace and ui read (observe/source.ts): its nodes' agent sockets
// under each node's tree, its pods (in their namespaces), probes run inside a pod's
// namespace from this host, and doctor run inside a node's namespace.
import { gauzeExecutable, runAsync, startPiped } from "../kernel/spawn.ts";
import { netnsPath } from "../kernel/netns.ts";
import { withRtnl } from "../kernel/netlink/index.ts";
import { nodePaths } from "../node/paths.ts";
import { agentStatus } from "./agents.ts";
import { nodeView } from "./view.ts";
import { findNode, findPod, loadLab, pickLab, podNamespace } from "./state.ts";

/** Structurally an observe `ClusterSource` (the CLI hands it to observe, trace and ui). */
export function labSource(name?: string) {
  const lab = pickLab(name);
  loadLab(lab); // a clear error now for a lab that does not exist
  return {
    label: `lab ${lab}`,
    outside: "the lab has no way out (its underlay, 172.18.0.0/16 in its own namespace, connects to no other network), so nothing outside the lab can answer",
    agents(node?: string) {
      const s = loadLab(lab);
      const nodes = node ? [findNode(s, node)] : s.nodes;
      return nodes.map((n) => ({ node: n.name, socket: nodePaths(n.root).apiSocket, startHint: s.manifest ? `its DaemonSet pod is not running; see why: gauze lab logs ${n.name} --name ${s.name}` : `start it: gauze lab node start-agent ${n.name} --name ${s.name}` }));
    },
    view() {
      const s = loadLab(lab);
      const nodes = s.nodes.map((n) => {
        const v = nodeView(s, n);
        const a = agentStatus(n);
        return { name: n.name, ip: n.ip, ready: v.ready, reason: v.reason ?? v.agent?.reason ?? "", subnet: v.subnet ?? null, vtepMac: v.vtepMac ?? null, agentUp: !!v.agent?.running, podMtu: a?.podMtu ?? null, overhead: a?.overhead ?? null };
      });
      return {
        name: s.name, backend: s.backend, podCidr: s.podCidr, ...(s.podCidr6 ? { podCidr6: s.podCidr6 } : {}), nodes,
        pods: s.pods.map((p) => ({ name: p.name, namespace: podNamespace(p), node: p.node, ...(p.ip ? { ip: p.ip } : {}), ...(p.ip6 ? { ip6: p.ip6 } : {}), phase: p.phase, ...(p.reason ? { reason: p.reason } : {}), ...(p.labels ? { labels: p.labels } : {}) })),
      };
    },
    findPod(ref: string) {
      const p = findPod(loadLab(lab), ref);
      return { name: p.name, namespace: podNamespace(p), node: p.node, ...(p.ip ? { ip: p.ip } : {}), ...(p.ip6 ? { ip6: p.ip6 } : {}), phase: p.phase, ...(p.reason ? { reason: p.reason } : {}) };
    },
    spawnInPod(pod: { name: string; namespace?: string }, argv: string[]) {
      return startPiped(argv, { netns: netnsPath(findPod(loadLab(lab), `${pod.namespace ?? "default"}/${pod.name}`).netns) });
    },
    interfaceNames(node: string) {
      try {
        const n = findNode(loadLab(lab), node);
        return withRtnl({ netns: netnsPath(n.netns) }, (nl) => new Map(nl.links().map((l) => [l.index, l.name])));
      } catch {
        return new Map<number, string>(); // the node is gone: indexes stay
      }
    },
    async doctorJson(node: string, timeoutMs = 30_000) {
      const r = await runAsync([gauzeExecutable(), "doctor", "--node", node, "--name", lab, "--json"], { timeoutMs });
      if (r.timedOut) return JSON.stringify({ error: `doctor on ${node} gave no report within ${timeoutMs / 1000} s` });
      return r.stdout || JSON.stringify({ error: r.stderr });
    },
    doctorCommand(node: string) {
      return `gauze doctor --node ${node} --name ${lab}`;
    },
  };
}
