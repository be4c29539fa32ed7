// This host's own agent as a source (`gauze observe --host` on a real node): one node, reached
// through the agent's socket under /run/gauze; pods are known by what the agent reports.
import { gauzeExecutable, runAsync } from "../kernel/spawn.ts";
import { withRtnl } from "../kernel/netlink/index.ts";
import { nodePaths } from "../node/paths.ts";
import type { ClusterSource, SourcePod } from "./source.ts";

export function hostSource(): ClusterSource {
  const node = "this host";
  return {
    label: "this host",
    agents: () => [{ node, socket: nodePaths("").apiSocket }],
    view: () => ({ name: "this host", backend: "", podCidr: "", nodes: [], pods: [] }),
    findPod(ref: string): SourcePod {
      throw new Error(`pod ${ref}: this host's pods are known only by their addresses (run it against a lab or a cluster)`);
    },
    spawnInPod(pod) {
      throw new Error(`pod ${pod.name}: probes from pods need a lab or a cluster, not --host`);
    },
    interfaceNames: () => {
      try {
        return withRtnl({}, (nl) => new Map(nl.links().map((l) => [l.index, l.name])));
      } catch {
        return new Map<number, string>();
      }
    },
    doctorJson: async (_node, timeoutMs = 30_000) => {
      const r = await runAsync([gauzeExecutable(), "doctor", "--host", "--json"], { timeoutMs });
      if (r.timedOut) return JSON.stringify({ error: `doctor gave no report within ${timeoutMs / 1000} s` });
      return r.stdout || JSON.stringify({ error: r.stderr });
    },
    doctorCommand: () => "gauze doctor --host",
  };
}
