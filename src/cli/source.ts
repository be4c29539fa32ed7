// Which nodes observe, trace and ui read: a lab's (--name, $GAUZE_LAB, or the only one), this
// host's own agent (--host), or a cluster through its Kubernetes API (--kubeconfig, --context).
import type { ClusterSource } from "../observe/source.ts";
import type { ClusterSourceOptions } from "../observe/cluster-source.ts";

/** The flags that pick a cluster (observe, trace, ui, doctor). */
export interface KubeFlags { kubeconfig?: string; context?: string; gauzeNamespace?: string; daemonset?: string }

export const clusterOptions = (o: KubeFlags): ClusterSourceOptions => ({
  ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}), ...(o.context ? { context: o.context } : {}),
  ...(o.gauzeNamespace ? { namespace: o.gauzeNamespace } : {}), ...(o.daemonset ? { daemonSet: o.daemonset } : {}),
});

export async function pickSource(o: { name?: string; host?: boolean } & KubeFlags, more: { interfaces?: boolean } = {}): Promise<ClusterSource> {
  if (o.kubeconfig || o.context) {
    const { clusterSource } = await import("../observe/cluster-source.ts");
    return clusterSource({ ...clusterOptions(o), ...more });
  }
  if (o.host) {
    const { hostSource } = await import("../observe/host-source.ts");
    return hostSource();
  }
  const { labSource } = await import("../lab/source.ts");
  return labSource(o.name);
}
