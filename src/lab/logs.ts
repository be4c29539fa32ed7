// `gauze lab logs <node|pod>` and `gauze lab podman -- <args>`: what a newcomer needs to see the
// lab's processes as kubectl logs and crictl show a cluster's. A node's agent logs to a file in
// the node's tree (var/log/gauze-agent.log) when the lab runs it directly, and to its container
// when a manifest's DaemonSet runs it (podman, with the lab's own storage: --root/--runroot and
// a containers.conf, which a bare `podman ps` does not see). A DaemonSet pod is named by its pod
// name, every container's log in turn.
import { existsSync } from "node:fs";
import { agentLog } from "./agents.ts";
import { podmanInvocation } from "./kube/kubelet.ts";
import type { LabState } from "./state.ts";

/** How to show one log: a file to print (or follow), or a podman command. */
export type LogSource = { kind: "file"; path: string; what: string } | { kind: "podman"; argv: string[]; env: Record<string, string>; what: string };

/** The log(s) behind a node or DaemonSet pod name; an unknown name is an error listing the names that have logs. */
export function logSources(s: LabState, target: string, follow: boolean): LogSource[] {
  const node = s.nodes.find((n) => n.name === target || n.name === `${s.name}-${target}`);
  const dpod = s.nodes.find((n) => n.pod?.name === target);
  const n = node ?? dpod;
  if (!n) {
    const names = [...s.nodes.map((x) => x.name), ...s.nodes.flatMap((x) => (x.pod ? [x.pod.name] : []))];
    const pod = s.pods.find((p) => p.name === target);
    const why = pod ? `pod ${target} is a lab pod (a command in a network namespace, no container): its node's agent log is gauze lab logs ${pod.node} --name ${s.name}` : `no node or DaemonSet pod named ${target}`;
    throw new Error(`${why} (logs: ${names.join(", ") || "none"})`);
  }
  if (n.pod) {
    // Init containers are gone once they succeeded: what is left is the agent's container.
    return n.pod.containers.map((c) => ({ kind: "podman" as const, ...podmanInvocation(s.name, ["logs", ...(follow ? ["--follow"] : []), c]), what: `container ${c} of pod ${n.pod!.name} on ${n.name}` }));
  }
  const path = agentLog(n);
  if (!existsSync(path)) throw new Error(`node ${n.name} has no agent log yet (${path}): its agent never started (gauze lab install --name ${s.name})`);
  return [{ kind: "file", path, what: `the agent on ${n.name}` }];
}
