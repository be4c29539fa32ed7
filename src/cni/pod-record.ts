// What the node's agent needs to name a pod's traffic: the plugin leaves, per attachment, the
// pod's name and namespace (from the runtime's CNI_ARGS), its addresses, its host-side interface
// and its network namespace, in <dir of the subnet file>/pods/, and DEL takes it away. Flows
// then say "default/web-1:80" instead of an address. Informational: a record that cannot be
// written never fails an ADD.
import { dirname, join } from "node:path";
import type { CniEnv } from "./env.ts";
import type { NetConf } from "./config.ts";
import { listDir, makeDirs, removeFile, writeText } from "../kernel/files.ts";

export interface PodRecord {
  pod?: string;
  namespace?: string;
  containerId: string;
  ifname: string;
  netns: string;
  /** Addresses with their prefix length, as in the CNI result. */
  ips: string[];
  /** The host end of the pod's veth (bridge mode); absent for macvlan. */
  hostIface?: string;
}

export function podRecordDir(subnetFile: string): string {
  return join(dirname(subnetFile), "pods");
}

function recordPath(conf: NetConf, env: CniEnv): string {
  return join(podRecordDir(conf.subnetFile), `${env.containerId}-${env.ifname}.json`);
}

export function writePodRecord(conf: NetConf, env: CniEnv, ips: string[], hostIface?: string): void {
  if (!conf.agentManaged) return; // no agent here to read it
  const r: PodRecord = {
    ...(env.args.podName ? { pod: env.args.podName } : {}), ...(env.args.podNamespace ? { namespace: env.args.podNamespace } : {}),
    containerId: env.containerId, ifname: env.ifname, netns: env.netns, ips, ...(hostIface ? { hostIface } : {}),
  };
  try {
    makeDirs(podRecordDir(conf.subnetFile));
    writeText(recordPath(conf, env), JSON.stringify(r) + "\n");
  } catch {
    // the agent names this pod's traffic by address instead
  }
}

/** GC: the records of attachments not in `keep` (keys "containerId-ifname") go; returns how many. */
export function gcPodRecords(conf: NetConf, keep: Set<string>): number {
  if (!conf.agentManaged) return 0;
  let n = 0;
  let files: string[];
  try {
    files = listDir(podRecordDir(conf.subnetFile));
  } catch {
    return 0; // no records yet
  }
  for (const f of files) {
    if (!f.endsWith(".json") || keep.has(f.slice(0, -".json".length))) continue;
    try {
      if (removeFile(join(podRecordDir(conf.subnetFile), f))) n++;
    } catch {
      // gone already
    }
  }
  return n;
}

export function removePodRecord(conf: NetConf, env: CniEnv): void {
  if (!conf.agentManaged) return;
  try {
    removeFile(recordPath(conf, env));
  } catch {
    // nothing to remove
  }
}
